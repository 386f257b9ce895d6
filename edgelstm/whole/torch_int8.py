"""Full int8 of a whole PyTorch module: every part calibrated on its own input, int8 between.

The float module runs on the calibration inputs part by part (:func:`.torch_split.split_torch`'s
chain), so each part sees the activations it will see in the file. A litert-torch segment is
converted in float and quantized by ai-edge-quantizer's static int8 recipe (``static_wi8_ai8``:
int8 weights and activations, int8 graph I/O) calibrated on its own inputs; each ``nn.LSTM``
by edgelstm's int8 fused op with int8 I/O, calibrated on its boundary activations. Every
internal boundary is int8 (the linker requantizes where two sides' scales differ), so every
LSTM input is integer. The model's outer I/O is float by default (one QUANTIZE after the
input, one DEQUANTIZE before the output) and int8 with ``Int8Options(io=True)``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from edgelstm.errors import CalibrationError, MissingDependencyError
from edgelstm.ir.options import CompileOptions

LITERT_TORCH_EXTRA = "pip install 'edgelstm[torch-tflite]'"
"""The extra that brings litert-torch and ai-edge-quantizer (torch_split says it too)."""

MAX_CALIBRATION_BATCHES = 64
"""Batches (of the example input's batch size) ai-edge-quantizer calibrates a segment on."""


def calibration_batches(x: Any, example: Any) -> list[Any]:
    """The calibration inputs as torch inputs shaped like ``example`` (the file's shape).

    ``x`` is either a stack of whole inputs, ``[N, *example.shape]``, or samples along the
    example's first axis, ``[N, *example.shape[1:]]``, cut into runs of its length (the
    batch for a batch-first module; for a time-major one, sequences stacked along time).
    """
    import torch

    shape = tuple(int(d) for d in example.shape)
    if x is None:
        raise CalibrationError(
            "quantize='int8' for a whole PyTorch module needs calibration inputs of the "
            f"module: CompileOptions(calibration=X) with X shaped [N, {_dims(shape[1:])}] "
            "(or TorchConverter.representative_dataset)"
        )
    data = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if data.ndim == len(shape) + 1 and tuple(data.shape[1:]) == shape and len(data):
        data = data.reshape(-1, *shape[1:])  # whole inputs, one after another
    elif data.ndim != len(shape) or tuple(data.shape[1:]) != shape[1:] or not len(data):
        raise CalibrationError(
            f"calibration shape {list(data.shape)}: expected [N, {_dims(shape[1:])}] (samples "
            f"along the example input's first axis) or [N, {_dims(shape)}] (whole inputs)"
        )
    if not torch.isfinite(data).all():
        raise CalibrationError("calibration data: expected finite real numbers")
    batch = shape[0]
    if len(data) < batch:  # fewer samples than one input: repeat them
        data = data.repeat((batch + len(data) - 1) // len(data), *[1] * (data.ndim - 1))
    usable = len(data) - len(data) % batch
    return list(data[:usable].split(batch))


def _dims(dims: tuple[int, ...]) -> str:
    return ", ".join(str(d) for d in dims)


def _static_int8(segment: bytes, feeds: list[Any]) -> bytes:
    """A litert-torch float segment quantized to int8 (int8 I/O), calibrated on ``feeds``.

    The activation ranges are the min/max over every calibration batch, as TensorFlow's
    converter takes them: ``Quantizer.calibrate`` keeps a moving average of per-batch
    ranges, which clips held-out values beyond the last batches' (measured: 1.4 max error
    at the input of a Conv1d segment against 0.01 from rounding).
    """
    try:
        from ai_edge_quantizer import calibrator, quantizer, recipe, recipe_manager
        from ai_edge_quantizer.utils import qsv_utils
    except ImportError:
        raise MissingDependencyError(
            f"int8 of a whole PyTorch module needs ai-edge-quantizer: {LITERT_TORCH_EXTRA}"
        ) from None
    from edgelstm.targets.tflite.schema import load_model

    sig = load_model(segment).signatureDefs[0]
    key, name = (
        v.decode() if isinstance(v, bytes) else v for v in (sig.signatureKey, sig.inputs[0].name)
    )
    step = max(1, len(feeds) // MAX_CALIBRATION_BATCHES)
    samples = [{name: f.numpy().astype(np.float32)} for f in feeds[::step]]
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe.static_wi8_ai8())
    q = quantizer.Quantizer(segment)
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its progress bar; LiteRT's debug-mode warning
        calib = calibrator.Calibrator(
            segment, num_threads=1, qsv_update_func=qsv_utils.min_max_update
        )
        calib.calibrate({key: samples}, manager)
        result = q.quantize(calib.get_model_qsvs(), enable_progress_report=False)
    return bytes(result.quantized_model)


def _lstm_int8(part: Any, feeds: list[Any], options: CompileOptions) -> bytes:
    """One ``nn.LSTM`` as edgelstm's int8 fused op, int8 I/O, calibrated on ``feeds``."""
    import torch

    from edgelstm.importers.torch_lstm import from_torch
    from edgelstm.targets.tflite import to_tflite

    lstm = part.module
    batch_major = [f if lstm.batch_first else f.transpose(0, 1) for f in feeds]
    calibration = torch.cat(batch_major).numpy().astype(np.float32)  # [N, T, I]
    batch, steps = batch_major[0].shape[:2]
    fixed = replace(
        options,
        batch=int(batch),
        seq_len=int(steps),
        calibration=calibration,
        int8=replace(options.int8, io=True),
    )
    return to_tflite(from_torch(lstm), fixed)


def _edge(blob: bytes, side: str) -> Any:
    """The input (``side="in"``) or output tensor of a part's main subgraph."""
    from edgelstm.targets.tflite.schema import load_model

    sub = load_model(blob).subgraphs[0]
    return sub.tensors[(sub.inputs if side == "in" else sub.outputs)[0]]


def _float_edge(tensor: Any, side: str) -> bytes:
    """A one-op part: QUANTIZE float -> ``tensor``'s int8 (``side="in"``), or DEQUANTIZE it.

    Linked before the first / after the last int8 part, it gives the model float I/O.
    """
    from edgelstm.targets.tflite import link_boundary as boundary
    from edgelstm.targets.tflite.builder import GraphBuilder, Quantization
    from edgelstm.targets.tflite.schema import BuiltinOperator, BuiltinOptions, schema

    q = tensor.quantization
    quant = Quantization(tuple(q.scale), tuple(q.zeroPoint))
    shape = [int(d) for d in tensor.shape]
    g = GraphBuilder("edgelstm float I/O")
    flt = g.add_tensor("float", shape, "float32")
    qnt = g.add_tensor("int8", shape, "int8", quantization=quant)
    if side == "in":
        op, src, dst = BuiltinOperator.QUANTIZE, flt, qnt
        kind, opts = BuiltinOptions.QuantizeOptions, schema.QuantizeOptionsT()
    else:
        op, src, dst = BuiltinOperator.DEQUANTIZE, qnt, flt
        kind, opts = BuiltinOptions.DequantizeOptions, schema.DequantizeOptionsT()
    version = boundary.op_version(op, tensor, tensor)  # reads the integer side only
    g.add_operator(op, [src], [dst], kind, opts, version=version)
    g.add_input("input", src)
    g.add_output("output", dst)
    return g.finish()


def int8_parts(
    parts: list[Any],
    calibration: list[Any],
    example: Any,
    options: CompileOptions,
    convert_segment: Any,
) -> list[bytes]:
    """Every part as int8 bytes in chain order (float I/O wrappers unless ``int8.io``).

    ``convert_segment(module, example_input) -> bytes`` is litert-torch's float conversion.
    """
    import torch

    from edgelstm.targets.tflite.schema import TensorType

    blobs = []
    feeds, value = calibration, example
    for part in parts:
        with torch.no_grad():
            if part.kind == "lstm":
                blobs.append(_lstm_int8(part, feeds, options))
                outputs = [part.module(f)[0] for f in feeds]
                value = part.module(value)[0]
            else:
                part.module.eval()
                blobs.append(_static_int8(convert_segment(part.module, value), feeds))
                outputs = [part.module(f) for f in feeds]
                value = part.module(value)
        feeds = outputs
    if not options.int8.io:  # float model I/O around the int8 edges (if int8 they are)
        first, last = _edge(blobs[0], "in"), _edge(blobs[-1], "out")
        if first.type == TensorType.INT8:
            blobs.insert(0, _float_edge(first, "in"))
        if last.type == TensorType.INT8:
            blobs.append(_float_edge(last, "out"))
    return blobs
