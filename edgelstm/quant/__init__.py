"""Full-integer (8x8_16) quantization of the fused LSTM op, with calibration.

Pipeline: :func:`calibrate` runs the float64 reference math on representative data and
records the ranges the integer kernel needs -> :func:`plan_model` / :func:`plan_direction`
turn them into an :class:`Int8Plan` per direction (int8/int16/int32 codes and params of every
op tensor, the 5 intermediates, input/output/state params) -> the TFLite builder writes them.
:func:`quantize_model` does all three; :func:`to_tflite_int8` (called by
``edgelstm.targets.tflite.to_tflite`` for ``quantize="int8"``) writes the file. :func:`check_model`
refuses what the kernel gets wrong.

Range estimators (:mod:`.estimators`): default ``percentile`` for the input and ``minmax``
for the recurrent output/hidden state (:data:`DEFAULT_ESTIMATORS` says why, with numbers).
"""

from typing import Any

from edgelstm.quant.calibrate import Calibration, DirectionStats, calibrate
from edgelstm.quant.estimators import ESTIMATORS, Observer
from edgelstm.quant.model_plan import HeadPlan, ModelPlan, plan_model, quantize_model
from edgelstm.quant.plan import DEFAULT_ESTIMATORS, Int8Plan, QuantTensor, plan_direction
from edgelstm.quant.qparams import QuantParams
from edgelstm.quant.support import TARGET, check_model, check_spec

__all__ = [
    "DEFAULT_ESTIMATORS",
    "ESTIMATORS",
    "TARGET",
    "Calibration",
    "DirectionStats",
    "HeadPlan",
    "Int8Plan",
    "ModelPlan",
    "Observer",
    "QuantParams",
    "QuantTensor",
    "calibrate",
    "check_model",
    "check_spec",
    "plan_direction",
    "plan_model",
    "quantize_model",
    "to_tflite_int8",
]


def __getattr__(name: str) -> Any:
    # The TFLite writer (and the flatbuffer schema) load only when a file is emitted.
    if name == "to_tflite_int8":
        from edgelstm.targets.tflite.int8 import to_tflite_int8

        return to_tflite_int8
    raise AttributeError(f"module 'edgelstm.quantize' has no attribute {name!r}")
