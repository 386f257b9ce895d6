"""Quantization for every target: one quantizer, one calibrator, no file formats.

:mod:`.qparams` (per-tensor / per-channel params and the rules choosing them) and
:mod:`.tensor` (float arrays -> integer codes) serve the fused int8 plan, the hybrid op, the
unfused lowering, onnxruntime's weight schemes and the runners' inputs; :mod:`.calibrate`
observes every range any of them needs on the float64 reference (:mod:`.batches` checks and
batches the data).

Full-integer (8x8_16) fused LSTM: :func:`calibrate` runs the float64 reference math on
representative data and records the ranges the integer kernel needs -> :func:`plan_model` /
:func:`plan_direction` turn them into an :class:`Int8Plan` per direction (int8/int16/int32
codes and params of every op tensor, the 5 intermediates, input/output/state params) -> the
TFLite builder writes them.
:func:`quantize_model` does all three; a target writes the file
(:func:`edgelstm.targets.tflite.int8.to_tflite_int8`: the quantizer knows no file format).
:func:`check_model` refuses what the kernel gets wrong.

Range estimators (:mod:`.estimators`): default ``percentile`` for the input and ``minmax``
for the recurrent output/hidden state (:data:`DEFAULT_ESTIMATORS` says why, with numbers).
Weight codes: ``compensated`` rounding on the calibration's second moments by default
(:mod:`.rounding`). The kernel itself is replayed bit for bit by :mod:`.kernel_sim`
(:mod:`.fixedpoint`, :mod:`.layer_norm_int`) for ``verify --explain``.
"""

from edgelstm.quant.calibrate import Calibration, DirectionStats, Moments, calibrate
from edgelstm.quant.estimators import ESTIMATORS, Observer
from edgelstm.quant.kernel_sim import KernelSim
from edgelstm.quant.model_plan import HeadPlan, ModelPlan, plan_model, quantize_model
from edgelstm.quant.plan import DEFAULT_ESTIMATORS, ROUNDINGS, Int8Plan, plan_direction
from edgelstm.quant.qparams import ChannelParams, QuantParams
from edgelstm.quant.support import TARGET, check_model, check_spec
from edgelstm.quant.tensor import QuantTensor

__all__ = [
    "DEFAULT_ESTIMATORS",
    "ESTIMATORS",
    "ROUNDINGS",
    "TARGET",
    "Calibration",
    "ChannelParams",
    "DirectionStats",
    "HeadPlan",
    "Int8Plan",
    "KernelSim",
    "ModelPlan",
    "Moments",
    "Observer",
    "QuantParams",
    "QuantTensor",
    "calibrate",
    "check_model",
    "check_spec",
    "plan_direction",
    "plan_model",
    "quantize_model",
]
