"""Full-integer TFLite graphs: the TFLite emitter's graph with int8 tensors and int8 LSTM ops.

:func:`edgelstm.targets.tflite.fused.to_tflite` hands ``quantize="int8"`` to :func:`to_tflite_int8`.
The graph structure (stacking, REVERSE_V2, CONCATENATION, STRIDED_SLICE, head) is
:class:`~edgelstm.targets.tflite.graph.GraphEmitter`'s, as for the float file, so both stay
one graph; this module changes only:

* every sequence/step tensor is int8 with the params of the tensor it is computed from
  (REVERSE_V2, STRIDED_SLICE and CONCATENATION then copy bytes: the directions of a
  bidirectional layer share output params, see :mod:`.model_plan`);
* each LSTM op gets the tensors of its :class:`~edgelstm.quant.plan.Int8Plan`;
* the head is an int8 FULLY_CONNECTED (+ int8 SOFTMAX);
* I/O: float by default — QUANTIZE after the graph input, DEQUANTIZE before the graph
  output, so the file is a drop-in replacement for the float one — or int8 tensors directly
  with ``options.int8.io`` (scale and zero point in the tensors'
  quantization, for integer-only targets). ``return_state`` outputs are always the op's
  integer state variables (int8 h with the output's params, int16 c with scale 2^k): a
  DEQUANTIZE reading a variable has no data dependency on the LSTM op, and XNNPACK, which
  takes DEQUANTIZE, then runs it before the LSTM and returns the previous state.

``options.int8`` also gives the calibration's ``estimator`` (see
:func:`edgelstm.quant.plan.resolve_estimators`) and ``progress`` (progress bar).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from edgelstm.errors import CalibrationError
from edgelstm.ir.model import DirectionVisit, LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.ir.weights import LSTMWeights
from edgelstm.quant.model_plan import ModelPlan, quantize_model
from edgelstm.quant.qparams import QuantParams
from edgelstm.targets.tflite.builder import GraphBuilder, Quantization
from edgelstm.targets.tflite.graph import FC_KEEP_NUM_DIMS_VERSION, GraphEmitter
from edgelstm.targets.tflite.lstm_op import LSTMOpTensors
from edgelstm.targets.tflite.quant_desc import int8_op_tensors, quantization
from edgelstm.targets.tflite.schema import (
    NUMPY_OF_TYPE,
    BuiltinOperator,
    BuiltinOptions,
    schema,
    tensor_type,
)

_LAYER_TENSOR = re.compile(r"^layer(\d+)/(.+)$")
INT8_VERSIONS: dict[int, int] = {
    BuiltinOperator.REVERSE_V2: 3,
    BuiltinOperator.STRIDED_SLICE: 2,
    BuiltinOperator.CONCATENATION: 2,
    BuiltinOperator.SOFTMAX: 2,
    BuiltinOperator.FULLY_CONNECTED: 4,
    BuiltinOperator.DEQUANTIZE: 2,
    BuiltinOperator.GATHER: 2,
}
"""Operator versions for int8 first inputs (TFLite op_version.cc); int16 DEQUANTIZE is 3."""
INT16_DEQUANTIZE_VERSION = 3


class _Int8Graph(GraphBuilder):
    """A GraphBuilder that versions ops by their input dtype and, unless ``int8_io``, puts
    QUANTIZE after the graph input and DEQUANTIZE before each graph output."""

    def __init__(
        self, description: str, int8_io: bool, output_columns: np.ndarray | None = None
    ) -> None:
        super().__init__(description)
        self.int8_io = int8_io
        self.output_columns = output_columns
        self.dtypes: list[str] = []
        self.quant: list[Quantization | None] = []
        self.variables: set[int] = set()

    def add_tensor(self, name: str, shape: Sequence[int], dtype: object = "float32", **kw) -> int:
        index = super().add_tensor(name, shape, dtype, **kw)
        self.dtypes.append(NUMPY_OF_TYPE[tensor_type(dtype)].name)
        self.quant.append(kw.get("quantization"))
        if kw.get("is_variable"):
            self.variables.add(index)
        return index

    def add_operator(self, builtin: int, inputs: Sequence[int], outputs: Sequence[int], *a, **kw):
        first = self.dtypes[inputs[0]] if inputs and inputs[0] >= 0 else ""
        if first == "int8" and builtin in INT8_VERSIONS:
            kw["version"] = max(kw.get("version", 1), INT8_VERSIONS[builtin])
        elif first == "int16" and builtin == BuiltinOperator.DEQUANTIZE:
            kw["version"] = INT16_DEQUANTIZE_VERSION
        return super().add_operator(builtin, inputs, outputs, *a, **kw)

    def add_input(self, name: str, tensor: int) -> None:
        if self.int8_io:
            return super().add_input(name, tensor)
        shape, sig = self.tensor_shape(tensor), self.tensor_signature(tensor)
        outer = self.add_tensor(name, shape, "float32", shape_signature=sig)
        self.add_operator(BuiltinOperator.QUANTIZE, [outer], [tensor])
        return super().add_input(name, outer)

    def add_output(self, name: str, tensor: int) -> None:
        # A state output is the op's variable tensor itself (int8 h, int16 c). An op reading
        # it has no data dependency on the LSTM op, so a delegate (XNNPACK takes DEQUANTIZE)
        # may run it first and return the old state: states stay integer, never wrapped.
        if name == "output" and self.output_columns is not None:
            tensor = self._real_features(tensor)
        if self.int8_io or tensor in self.variables or self.dtypes[tensor] == "float32":
            return super().add_output(name, tensor)
        shape, sig = self.tensor_shape(tensor), self.tensor_signature(tensor)
        outer = self.add_tensor(f"{name}/float", shape, "float32", shape_signature=sig)
        self.add_operator(BuiltinOperator.DEQUANTIZE, [tensor], [outer])
        return super().add_output(name, outer)

    def _real_features(self, tensor: int) -> int:
        """GATHER the real features of a padded output (see :mod:`.pad`)."""
        cols = np.asarray(self.output_columns, dtype=np.int32)
        shape, sig = self.tensor_shape(tensor), self.tensor_signature(tensor)
        index = self.add_constant("output/real_features", cols)
        out = self.add_tensor(
            "output/gathered",
            shape[:-1] + [len(cols)],
            self.dtypes[tensor],
            quantization=self.quant[tensor],
            shape_signature=sig[:-1] + [len(cols)],
        )
        opts = schema.GatherOptionsT()
        opts.axis = len(shape) - 1
        self.add_operator(
            BuiltinOperator.GATHER, [tensor, index], [out], BuiltinOptions.GatherOptions, opts
        )
        return out


class _Int8Emitter(GraphEmitter):
    """The graph with integer tensors (see the module docstring)."""

    def __init__(self, model: LSTMModel, options: CompileOptions, plan: ModelPlan) -> None:
        super().__init__(model, options)
        self.plan = plan
        self.g = _Int8Graph(self.g.description, options.int8.io, plan.output_columns)

    def _params_of(self, name: str) -> QuantParams:
        """Params of an emitter-made sequence/step tensor, from its name."""
        if name == "input":
            return self.plan.input
        match = _LAYER_TENSOR.match(name)
        if match is None:  # pragma: no cover - the float emitter names every tensor so
            raise AssertionError(f"int8 emitter: no params for tensor {name!r}")
        k, rest = int(match.group(1)), match.group(2)
        if rest == "input_reversed":
            return self.plan.input if k == 0 else self.plan.layer_outputs[k - 1]
        if rest.startswith("backward/"):  # REVERSE_V2 / STRIDED_SLICE copy the op's bytes
            return self.plan.direction(k, 1).output
        if rest.startswith("forward/"):
            return self.plan.direction(k, 0).output
        return self.plan.layer_outputs[k]  # "output": the concatenation

    def _int_tensor(self, name: str, shape: list[int], sig: list[int], params: QuantParams) -> int:
        return self.g.add_tensor(
            name, shape, params.dtype, quantization=quantization(params), shape_signature=sig
        )

    def seq_tensor(self, name: str, features: int) -> int:
        b, t = self.batch, self.steps
        shape = [t or 1, b or 1, features] if self.time_major else [b or 1, t or 1, features]
        sig = [t or -1, b or -1, features] if self.time_major else [b or -1, t or -1, features]
        params = self._params_of(name)
        if name == "input" and not self.g.int8_io:
            name = "input/int8"  # the float graph input is "input", as in a float file
        return self._int_tensor(name, shape, sig, params)

    def step_tensor(self, name: str, features: int) -> int:
        b = self.batch
        return self._int_tensor(
            name, [b or 1, features], [b or -1, features], self._params_of(name)
        )

    def op_tensors(self, visit: DirectionVisit) -> LSTMOpTensors:
        return int8_op_tensors(self.plan.direction(visit.k, visit.d))

    def head(self, x: int, rank: int) -> int:
        hp = self.plan.head
        assert hp is not None and self.model.head is not None
        g = self.g
        kernel = g.add_constant(
            "head/kernel", hp.kernel.data, quantization=quantization(hp.kernel.params)
        )
        bias = g.add_constant("head/bias", hp.bias.data, quantization=quantization(hp.bias.params))
        shape, sig = g.tensor_shape(x)[:-1], g.tensor_signature(x)[:-1]
        units = self.model.head.units
        softmax = self.model.head.activation == "softmax"
        fc_out = self._int_tensor(
            "head/dense" if softmax else "head/output", shape + [units], sig + [units], hp.logits
        )
        opts = schema.FullyConnectedOptionsT()
        opts.keepNumDims = rank == 3
        g.add_operator(
            BuiltinOperator.FULLY_CONNECTED,
            [x, kernel, bias],
            [fc_out],
            BuiltinOptions.FullyConnectedOptions,
            opts,
            version=FC_KEEP_NUM_DIMS_VERSION if rank == 3 else 1,
        )
        if not softmax:
            return fc_out
        sm = schema.SoftmaxOptionsT()
        sm.beta = 1.0
        if not g.int8_io:
            # Float I/O: softmax in float on the dequantized logits. An int8 softmax output
            # has an LSB of 1/256, so small probabilities become exactly 0 (a char LM then
            # scores infinite bits/char); the float op costs one exp per unit.
            logits = g.add_tensor(
                "head/logits/float", shape + [units], "float32", shape_signature=sig + [units]
            )
            g.add_operator(BuiltinOperator.DEQUANTIZE, [fc_out], [logits])
            out = g.add_tensor(
                "head/output/float", shape + [units], "float32", shape_signature=sig + [units]
            )
            g.add_operator(
                BuiltinOperator.SOFTMAX, [logits], [out], BuiltinOptions.SoftmaxOptions, sm
            )
            return out
        out = self._int_tensor("head/output", shape + [units], sig + [units], hp.output)
        g.add_operator(BuiltinOperator.SOFTMAX, [fc_out], [out], BuiltinOptions.SoftmaxOptions, sm)
        return out


def plan_for(model: LSTMModel, options: CompileOptions) -> ModelPlan:
    """Calibrate and plan ``model`` from ``options`` (``calibration`` and ``int8``)."""
    if options.calibration is None:
        raise CalibrationError(
            "quantize='int8' needs calibration data: representative [N, T, I] input "
            "sequences (CompileOptions(calibration=...) or --calibration FILE.npy)"
        )
    return quantize_model(
        model,
        options.calibration,
        estimator=options.int8.estimator,
        progress=options.int8.progress,
    )


def to_tflite_int8(
    model: LSTMModel | LSTMWeights, options: CompileOptions, plan: ModelPlan | None = None
) -> bytes:
    """Full-integer .tflite bytes for ``model`` (calibrated on ``options.calibration``).

    ``plan`` skips calibration (it must come from :func:`plan_for` / :func:`quantize_model`
    for this ``model``).
    """
    model = LSTMModel.of(model)
    if plan is None:
        plan = plan_for(model, options)
    # The plan's model is ``model`` or its exact padded rewrite (peephole + projection).
    return _Int8Emitter(plan.model, options, plan).build()
