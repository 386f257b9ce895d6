"""Emitters: the canonical model (and a quantization plan) in, a file's bytes out.

* :mod:`.tflite` — fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` (float, hybrid, full int8) and the
  unfused XNNPACK-friendly lowering (:mod:`.tflite.unfused`), plus the reader of our files;
* :mod:`.onnx` — fused ``LSTM`` where exact, else a composite; ORT dynamic int8 schemes;
  the reader of our own ONNX files.

Only the two builders (``tflite.builder``, ``onnx.builder``) know the file structures;
quantization parameters arrive format-neutral from :mod:`edgelstm.quant`.
"""
