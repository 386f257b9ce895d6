"""Measure an int8 file against the float64 reference: max abs error, RMSE, output LSB.

Errors are reported in real units and in output LSBs (the output tensor's scale), because an
int8 model cannot be better than about half an LSB and "a few LSB" is the meaningful bound.
Used by the tests and by ``tools/bench_int8_vs_legacy.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.ir.weights import LSTMWeights
from edgelstm.quant.model_plan import ModelPlan, quantize_model
from edgelstm.quant.plan import EstimatorChoice, HiddenMode, Rounding
from edgelstm.reference import reference_model


@dataclass(frozen=True)
class ErrorStats:
    """Error of an output against the reference."""

    max_abs: float
    rmse: float
    lsb: float

    @property
    def rmse_lsb(self) -> float:
        return self.rmse / self.lsb

    @property
    def max_lsb(self) -> float:
        return self.max_abs / self.lsb

    def __str__(self) -> str:
        return (
            f"max {self.max_abs:.4f} ({self.max_lsb:.1f} LSB)  "
            f"rmse {self.rmse:.5f} ({self.rmse_lsb:.2f} LSB)  LSB {self.lsb:.5f}"
        )


def error_stats(y: np.ndarray, ref: np.ndarray, lsb: float) -> ErrorStats:
    """Max abs error and RMSE of ``y`` against ``ref``, with the output ``lsb``."""
    err = np.asarray(y, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
    return ErrorStats(float(np.abs(err).max()), float(np.sqrt(np.mean(err**2))), float(lsb))


def run_tflite(data: bytes, x: np.ndarray) -> np.ndarray:
    """Run a float-I/O .tflite (first output) on ``x`` with LiteRT, one thread."""
    from edgelstm.runtime import LiteRTRunner

    return LiteRTRunner(data).run(np.asarray(x, dtype=np.float32))[0].astype(np.float64)


def compile_int8(
    model: LSTMModel | LSTMWeights,
    calibration: np.ndarray,
    *,
    plan: ModelPlan | None = None,
    estimator: EstimatorChoice = None,
    hidden: HiddenMode = "zero",
    rounding: Rounding = "compensated",
) -> tuple[bytes, ModelPlan]:
    """(float-I/O int8 .tflite bytes with a resizable batch, its plan); ``estimator`` and
    ``hidden`` go to :func:`~edgelstm.quant.model_plan.quantize_model` (without ``plan``)."""
    from edgelstm.targets.tflite.int8 import to_tflite_int8

    model = LSTMModel.of(model)
    plan = plan or quantize_model(
        model, calibration, estimator=estimator, hidden=hidden, rounding=rounding
    )
    options = CompileOptions(batch=None, quantize="int8", calibration=calibration)
    return to_tflite_int8(model, options, plan), plan


def evaluate_int8(
    model: LSTMModel | LSTMWeights,
    calibration: np.ndarray,
    held_out: np.ndarray,
    *,
    estimator: EstimatorChoice = None,
    hidden: HiddenMode = "zero",
    rounding: Rounding = "compensated",
) -> tuple[ErrorStats, ModelPlan, bytes]:
    """Calibrate, compile, run on ``held_out``; error against :func:`reference_model`."""
    model = LSTMModel.of(model)
    data, plan = compile_int8(
        model, calibration, estimator=estimator, hidden=hidden, rounding=rounding
    )
    y = run_tflite(data, held_out)
    ref = reference_model(model, held_out).output
    return error_stats(y, ref, plan.output.scale), plan, data
