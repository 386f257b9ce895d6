"""Int8 plans for a whole :class:`LSTMModel`: stacked and bidirectional layers, dense head.

Layer k reads layer k-1's output tensor, so its input params are that tensor's params (no
requantization between layers). The two directions of a bidirectional layer share one output
range so CONCATENATION is a byte copy and the next layer sees one set of params. The head is a
FULLY_CONNECTED with int8 symmetric per-tensor weights and an int32 bias at s_in·s_w; a softmax
head's int8 output uses the TFLite int8 SOFTMAX convention (scale 1/256, zero point -128).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edgelstm.ir.model import LSTMModel
from edgelstm.ir.weights import LSTMWeights
from edgelstm.quant.calibrate import Calibration, calibrate
from edgelstm.quant.estimators import estimate
from edgelstm.quant.pad import pad_for_int8
from edgelstm.quant.plan import (
    EstimatorChoice,
    HiddenMode,
    Int8Plan,
    Rounding,
    estimator_label,
    output_params,
    plan_direction,
    resolve_estimators,
    state_range,
)
from edgelstm.quant.qparams import QuantParams, asymmetric_int8
from edgelstm.quant.support import check_model
from edgelstm.quant.tensor import QuantTensor, quantize_bias, quantize_symmetric

SOFTMAX_INT8 = QuantParams(1.0 / 256, -128, "int8")


@dataclass(frozen=True)
class HeadPlan:
    """The quantized dense head: kernel, bias, logits params and (softmax) output params."""

    kernel: QuantTensor
    bias: QuantTensor
    logits: QuantParams
    output: QuantParams


@dataclass(frozen=True)
class ModelPlan:
    """``layers[k][d]`` is the :class:`Int8Plan` of direction d of layer k."""

    model: LSTMModel
    """The model the plans are for: the caller's, or its exact rewrite (:mod:`.pad`)."""
    layers: tuple[tuple[Int8Plan, ...], ...]
    head: HeadPlan | None
    estimator: str
    output_columns: np.ndarray | None = None
    """Real features of a padded final output (the emitter GATHERs them); None: all."""
    layer_outputs: tuple[QuantParams, ...] = ()
    """Params of each layer's output tensor (a bidirectional layer's concatenation)."""

    def direction(self, layer: int = 0, direction: int = 0) -> Int8Plan:
        return self.layers[layer][direction]

    @property
    def input(self) -> QuantParams:
        """Params of the model's int8 input."""
        return self.layers[0][0].input

    @property
    def output(self) -> QuantParams:
        """Params of the model's int8 output (the head's, when there is one)."""
        return self.head.output if self.head is not None else self.layer_outputs[-1]


def plan_model(
    calib: Calibration,
    *,
    estimator: EstimatorChoice = None,
    hidden: HiddenMode = "zero",
    output_columns: np.ndarray | None = None,
    rounding: Rounding = "compensated",
) -> ModelPlan:
    """Quantize every direction of a calibrated model, chaining params between layers
    (``rounding``: see :data:`edgelstm.quant.plan.ROUNDINGS`)."""
    model = calib.model
    check_model(model)
    input_params: QuantParams | None = None
    layers: list[tuple[Int8Plan, ...]] = []
    outputs: list[QuantParams] = []
    for layer_stats in calib.stats:
        shared = None
        if len(layer_stats) > 1:  # one set of output params for both directions
            name = resolve_estimators(estimator)["output"]
            ranges = [
                state_range(s.weights.spec, estimate(s.observers["output"], name, symmetric=False))
                for s in layer_stats
            ]
            shared = output_params([s.weights.spec for s in layer_stats], ranges)
        plans = tuple(
            plan_direction(
                s,
                estimator=estimator,
                input_params=input_params,
                shared_output=shared,
                hidden=hidden,
                rounding=rounding,
            )
            for s in layer_stats
        )
        layers.append(plans)
        input_params = plans[0].output
        outputs.append(input_params)
    head = None
    if model.head is not None:
        head = _plan_head(model, calib, input_params, resolve_estimators(estimator)["output"])
    return ModelPlan(
        model, tuple(layers), head, estimator_label(estimator), output_columns, tuple(outputs)
    )


def _plan_head(
    model: LSTMModel, calib: Calibration, input_params: QuantParams, estimator: str
) -> HeadPlan:
    head = model.head
    kernel = quantize_symmetric(head.kernel, "int8")
    bias_scale = kernel.params.scale * input_params.scale
    logits = asymmetric_int8(*estimate(calib.head, estimator, symmetric=False))
    output = SOFTMAX_INT8 if head.activation == "softmax" else logits
    return HeadPlan(
        kernel=kernel,
        bias=QuantTensor(quantize_bias(head.bias, bias_scale), QuantParams(bias_scale, 0, "int32")),
        logits=logits,
        output=output,
    )


def quantize_model(
    model: LSTMModel | LSTMWeights,
    data: np.ndarray | Iterable[np.ndarray],
    *,
    estimator: EstimatorChoice = None,
    progress: bool | None = None,
    hidden: HiddenMode = "zero",
    rounding: Rounding = "compensated",
) -> ModelPlan:
    """Check support, calibrate on ``data`` and plan every tensor of ``model`` for int8.

    A peephole direction with projection to n_output < n_cell is first rewritten exactly
    (:func:`.pad.pad_for_int8`); the plan's ``model`` is then the rewritten one.
    """
    padded = pad_for_int8(LSTMModel.of(model))
    check_model(padded.model)
    return plan_model(
        calibrate(padded.model, data, progress=progress, moments=rounding == "compensated"),
        estimator=estimator,
        hidden=hidden,
        output_columns=padded.output_columns,
        rounding=rounding,
    )
