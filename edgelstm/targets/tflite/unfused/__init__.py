"""Building blocks of the unfused (XNNPACK-friendly) lowering and the latency search.

* :mod:`.ops` — op emission over one TFLite (sub)graph;
* :mod:`.params` — gates stacked into one matrix, per-channel int8 weights;
* :mod:`.cell` — one LSTM time step (every feature; float, dynamic-range, static int8);
* :mod:`.loop` — fully unrolled or WHILE-loop recurrence schedules;
* :mod:`.ranges` — the static-int8 variant's activation params (from :mod:`edgelstm.quant`);
* :mod:`.icell` / :mod:`.iranges` — the all-integer step (int16 gate math) of the TFLite
  Micro profile and its power-of-two int16 scales;
* :mod:`.onnx_u8` — DynamicQuantizeLSTM with uint8 weights (accurate on any x86).

The model-level entry point is :func:`edgelstm.targets.tflite.unfused.emit.to_tflite_unfused`; the
search over every variant is :func:`edgelstm.measure.optimize.optimize_latency`.
"""
