"""Dynamic int8 (int8 weights, float activations) via onnxruntime's ``quantize_dynamic``.

The fused ``LSTM`` node becomes ``com.microsoft.DynamicQuantizeLSTM``; the composite's
hoisted input MatMul (and, with ``EnableSubgraph``, the recurrent MatMul inside the Scan
body) become ``MatMulInteger`` with scale multiplications. ORT picks the graph; the weights
are then re-derived with the weight scheme chosen by measurement
(:mod:`edgelstm.targets.onnx.scheme_choice`: pair-safe, full-range, 7-bit, uint8 or ORT's own
defaults; by default never less accurate than ORT's defaults, here nor without VNNI, the
fastest such; ``priority="portable"``: judged by the simulated error without VNNI).
Static int8 is refused by the emitter (see :data:`edgelstm.targets.onnx.emit.STATIC_INT8_REASON`).
:func:`full_range_int8` is ORT's own full-range weights, unchanged (a latency-search
candidate).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from edgelstm.errors import UnsupportedError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import DynamicPriority

PER_CHANNEL = False
"""Per-tensor weight scales: measured as accurate as per-channel on the benchmark weights and
faster (H=256: fused 0.37 vs 0.40 ms, composite 0.85 vs 1.06 ms)."""
REDUCE_RANGE = True
"""The candidates' base graph is ORT's 7-bit run (safe everywhere); their weights are then
re-derived (:func:`~edgelstm.targets.onnx.scheme_choice.build_candidates`).
Full range saturates ORT's u8 x s8 kernels on CPUs without VNNI: measured max error 0.23
(full range) vs 0.013 (7-bit) at H=256 on an AVX2-only CPU."""
COMPENSATED = "int8-comp"
"""The candidate with compensated full-range codes (calibration data given)."""
WEIGHT_SCHEME = "int8-pair"
"""The fallback when nothing can be measured: pair sums bounded instead of every weight, as
safe as 7-bit, up to 8-bit precision."""


def _ort_quantize_dynamic(model: onnx.ModelProto, **options: object) -> bytes:
    """onnxruntime's ``quantize_dynamic`` (int8 weights) on ``model``: the file's bytes."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise UnsupportedError("onnx", f"dynamic quantization needs onnxruntime ({exc})") from None
    root = logging.getLogger()
    with tempfile.TemporaryDirectory(prefix="edgelstm-onnx-") as tmp:
        src, dst = Path(tmp, "float.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(model.SerializeToString())
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint
        try:
            with contextlib.redirect_stdout(None):
                quantize_dynamic(src, dst, weight_type=QuantType.QInt8, **options)
        finally:
            root.setLevel(level)
        return dst.read_bytes()


def full_range_int8(model: onnx.ModelProto) -> bytes:
    """ORT's ``quantize_dynamic`` with its defaults (full 8-bit weights), unchanged.

    As fast as :data:`WEIGHT_SCHEME` and more accurate where the u8 x s8 kernels do not
    saturate (AVX-512 VNNI / AVX-VNNI); it saturates on plain AVX2, so only measurement can
    pick it.
    """
    return _ort_quantize_dynamic(model)


def quantize_dynamic_model(
    model: onnx.ModelProto,
    *,
    calibration: np.ndarray | None = None,
    priority: DynamicPriority = "accuracy",
    lstm: LSTMModel | None = None,
) -> onnx.ModelProto:
    """Return the dynamic-int8 version of a float model (metadata kept, marked quantized).

    The weight scheme is chosen by measured error (:func:`~edgelstm.targets.onnx.
    scheme_choice.choose_scheme`, policy ``priority``: ``OnnxOptions.dynamic_priority``) on
    ``calibration`` ([N, T, I] sequences) when given, else on seeded random inputs; the
    choice, the policy and the errors are in ``edgelstm.quantize.scheme``. With calibration
    data and ``lstm`` (the model ``model`` was emitted from), one more candidate:
    ``int8-comp``, full-range codes rounded on the calibration's statistics
    (:mod:`.compensate`)."""
    from edgelstm.targets.onnx.scheme_choice import SCHEME_KEY, choose_scheme

    extra = {}
    if calibration is not None and lstm is not None:
        extra[COMPENSATED] = _compensator(model, lstm, calibration)
    quantized, choice = choose_scheme(
        model,
        _ort_quantize_dynamic,
        calibration,
        priority=priority,
        extra=extra,
        per_channel=PER_CHANNEL,
        extra_options={"EnableSubgraph": True},
    )
    _drop_value_info(quantized.graph)
    props = {p.key: p.value for p in model.metadata_props}
    props["edgelstm.quantize"] = "dynamic"
    props[SCHEME_KEY] = choice
    del quantized.metadata_props[:]
    onnx.helper.set_model_props(quantized, props)
    quantized.producer_name = model.producer_name
    quantized.producer_version = model.producer_version
    quantized.doc_string = model.doc_string
    return quantized


def _compensator(floats: onnx.ModelProto, lstm: LSTMModel, calibration: np.ndarray):
    """The ``int8-comp`` candidate's derivation: each fused LSTM direction's second moments
    from edgelstm's calibrator (one pass), then :func:`.compensate.compensate_lstm_weights`."""

    def derive(proto: onnx.ModelProto) -> int:
        from edgelstm.quant.calibrate import calibrate
        from edgelstm.targets.onnx.compensate import compensate_lstm_weights

        stats = calibrate(lstm, calibration, progress=False).stats
        hessians = [[d.moments.gate_hessian() if d.moments else None for d in s] for s in stats]
        return compensate_lstm_weights(proto, floats, hessians)

    return derive


def _drop_value_info(graph: onnx.GraphProto) -> None:
    """Remove the quantizer's intermediate shape annotations (graph and subgraphs).

    Its shape inference cannot see outer-scope constants from inside a Scan body and
    records wrong shapes there (e.g. an even split), which ``check_model`` then rejects.
    """
    del graph.value_info[:]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _drop_value_info(attr.g)
            for sub in attr.graphs:
                _drop_value_info(sub)
