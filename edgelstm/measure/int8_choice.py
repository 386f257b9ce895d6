"""The measured full-int8 lowering choice (``Int8Options(lowering="auto")``, the CLI's
``--int8-lowering auto``): both lowerings of :mod:`edgelstm.targets.tflite.int8_choice`
compiled on 3/4 of the calibration data, run on LiteRT on the rest against the float64
reference; the lower output RMSE (in the fused file's output LSB) wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.ir.weights import LSTMWeights
from edgelstm.targets.tflite.int8_choice import integer_refusal, to_tflite_integer

HELD_FRACTION = 0.25
"""Share of the calibration data ``auto`` holds out to measure both lowerings on."""


@dataclass(frozen=True)
class Choice:
    """What ``auto`` measured: output RMSE in the fused file's output LSB per lowering."""

    lowering: str
    rmse_lsb: dict[str, float]
    reason: str = ""


def _split(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fit, held out) batch-major: the last quarter of the sequences, or of the steps of a
    single sequence."""
    n, t = xs.shape[:2]
    if n >= 2:
        held = max(1, round(n * HELD_FRACTION))
        return xs[: n - held], xs[n - held :]
    cut = max(1, round(t * (1 - HELD_FRACTION)))
    if cut >= t:
        return xs, xs
    return xs[:, :cut], xs[:, cut:]


def _run_integer(data: bytes, x: np.ndarray) -> np.ndarray:
    from edgelstm.runtime.litert import LiteRTRunner

    runner = LiteRTRunner(data)
    y = runner.run(np.asarray(x, np.float32))[0]
    scale, zero = runner.output_quantization[0]
    return (y.astype(np.float64) - zero) * scale


def measure_lowerings(model: LSTMModel, calibration: np.ndarray) -> Choice:
    """Both lowerings calibrated on 3/4 of ``calibration`` ([N, T, I] batch-major), run on
    LiteRT on the rest, against the float64 reference."""
    from edgelstm.measure.int8_error import compile_int8, error_stats, run_tflite
    from edgelstm.reference import reference_model

    xs = np.asarray(calibration, np.float64)
    xs = xs[None] if xs.ndim == 2 else xs
    fit, held = _split(xs)
    x = np.swapaxes(held, 0, 1) if model.time_major else held
    ref = reference_model(model, x).output
    data, plan = compile_int8(model, fit.astype(np.float32))
    lsb = plan.output.scale
    rmse = {"fused": error_stats(run_tflite(data, x), ref, lsb).rmse_lsb}
    shape = CompileOptions(
        batch=held.shape[0], seq_len=held.shape[1], quantize="int8", calibration=fit
    )
    why = integer_refusal(model, shape)
    if why is not None:
        return Choice("fused", rmse, why)
    y = _run_integer(to_tflite_integer(model, shape), x)
    rmse["integer"] = error_stats(y, ref, lsb).rmse_lsb
    best = min(rmse, key=rmse.__getitem__)
    return Choice(best, rmse, "lower output RMSE on the held-out quarter of the calibration data")


def choose_lowering(model: LSTMModel, options: CompileOptions) -> Choice:
    """The lowering ``options.int8.lowering`` asks for ("auto": :func:`measure_lowerings`)."""
    asked = options.int8.lowering
    if asked != "auto":
        return Choice(asked, {})
    why = integer_refusal(model, options)
    if why is not None:
        return Choice("fused", {}, why)
    if options.calibration is None:
        return Choice("fused", {}, "no calibration data to measure on")
    return measure_lowerings(model, options.calibration)


def to_tflite_int8_choice(
    model: LSTMModel | LSTMWeights, options: CompileOptions
) -> tuple[bytes, Choice]:
    """Full int8 .tflite bytes with the lowering ``options.int8.lowering`` picks, and the
    choice (with what ``auto`` measured)."""
    model = LSTMModel.of(model)
    choice = choose_lowering(model, options)
    if choice.lowering == "integer":
        return to_tflite_integer(model, options), choice
    from edgelstm.targets.tflite.int8 import to_tflite_int8

    fused = replace(options, int8=replace(options.int8, lowering="fused"))
    return to_tflite_int8(model, fused), choice
