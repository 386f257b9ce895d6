"""One fused UNIDIRECTIONAL_SEQUENCE_LSTM operator, written from the roles table.

Interface for quantizers (hybrid here, full int8 in ``edgelstm.quant``)
--------------------------------------------------------------------------
A writer describes every tensor of the op with a :class:`TensorDesc` (dtype, stored data,
quantization) and hands them over in one :class:`LSTMOpTensors`:

* ``weights``: role name -> TensorDesc for each weight role the spec has (names from
  :mod:`edgelstm.ir.roles`; shapes are checked against ``Role.shape(spec)``). Float writes
  float32; hybrid writes int8 symmetric per-tensor matrices/peepholes with float biases;
  full int8 writes int8 matrices, int16 peephole/LN coefficients, int32 biases.
* ``output_state`` / ``cell_state``: dtype and quantization of the two variable tensors
  (shape is [batch, n_output] / [batch, n_cell]; no data; ``is_variable``).
* ``output``: dtype and quantization of the op's single output tensor.
* ``intermediates``: intermediate name -> TensorDesc for the 5 operator intermediates full
  int8 needs (names from :data:`edgelstm.ir.roles.INTERMEDIATES`; empty otherwise); each
  desc needs an explicit ``shape`` (e.g. ``(0,)`` for FLOAT32 placeholders).
* ``version`` / ``asymmetric_quantize_inputs``: operator version and option (1 float and full
  int8, 2 hybrid, 3 hybrid with asymmetric inputs).

:func:`add_lstm_op` then adds the tensors to a :class:`GraphBuilder` in role order, writes
absent optional inputs as -1 (always the 24-input form: TFLite Micro requires exactly 24,
LiteRT / tf.lite / tflite-runtime give bit-identical results on the 24- and 20-input forms),
and returns the tensor
indices of the output and the two state variables. Tensor names are
``{prefix}/{role name}``, ``{prefix}/output_state``, ``{prefix}/cell_state``,
``{prefix}/output`` and ``{prefix}/intermediate_{index}``; the runner and reader find the
states by these indices/names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from edgelstm.errors import UnsupportedError
from edgelstm.ir.roles import INTERMEDIATES, N_INPUTS, ROLES, Role
from edgelstm.ir.spec import LSTMSpec
from edgelstm.ir.weights import LSTMWeights
from edgelstm.targets.tflite.builder import GraphBuilder, Quantization
from edgelstm.targets.tflite.schema import (
    ACTIVATION_OF_NAME,
    BuiltinOperator,
    BuiltinOptions,
    schema,
)

FLOAT_OP_VERSION = 1
ADD_VERSIONS = {"float32": 1, "int8": 2, "int16": 1}
"""ADD's version by dtype (TFLite op_version.cc: int8 2; int16 with pot_scale_int16 1)."""
RESET_SUFFIXES = ("initial", "zero")
"""Names of the two variables a reset ADD reads: ``{state}/initial`` and ``{state}/zero``."""


@dataclass(frozen=True)
class TensorDesc:
    """How one op tensor is stored: dtype, constant data (None for activations) and quant."""

    dtype: str = "float32"
    data: np.ndarray | None = None
    quantization: Quantization | None = None
    shape: tuple[int, ...] | None = None
    """Explicit shape (only needed for intermediates and data-less placeholders)."""


FLOAT32 = TensorDesc("float32")


@dataclass(frozen=True)
class LSTMOpTensors:
    """All tensors of one fused LSTM op except its input (see the module docstring)."""

    weights: Mapping[str, TensorDesc]
    output_state: TensorDesc = FLOAT32
    cell_state: TensorDesc = FLOAT32
    output: TensorDesc = FLOAT32
    intermediates: Mapping[str, TensorDesc] = field(default_factory=dict)
    """Intermediate name (:data:`~edgelstm.ir.roles.INTERMEDIATES`) -> desc: all 5 or none."""
    version: int = FLOAT_OP_VERSION
    asymmetric_quantize_inputs: bool = False


@dataclass(frozen=True)
class LSTMOpResult:
    """Tensor indices created by :func:`add_lstm_op`."""

    output: int
    output_state: int
    cell_state: int


def check_activation(spec: LSTMSpec) -> int:
    """The ActivationFunctionType for ``spec``; refuse activations the kernel gets wrong."""
    if spec.activation in ACTIVATION_OF_NAME:
        return ACTIVATION_OF_NAME[spec.activation]
    if spec.activation == "linear":
        reason = (
            "activation 'linear' would be fused_activation_function NONE, which the fused "
            "UNIDIRECTIONAL_SEQUENCE_LSTM kernel (float and hybrid) accepts but does not "
            "compute: its output is not the identity-activation LSTM"
        )
    elif spec.activation == "sigmoid":
        reason = (
            "activation 'sigmoid' has no ActivationFunctionType value, so the fused "
            "UNIDIRECTIONAL_SEQUENCE_LSTM op cannot express it"
        )
    else:  # pragma: no cover - LSTMSpec validates activations
        reason = f"activation {spec.activation!r} is not supported"
    raise UnsupportedError("tflite", reason)


def float_tensors(weights: LSTMWeights) -> LSTMOpTensors:
    """Descriptions for a float32 op: every present weight role stored as float32."""
    return LSTMOpTensors(
        weights={
            name: TensorDesc("float32", np.asarray(arr, dtype=np.float32))
            for name, arr in weights.tensors.items()
        }
    )


def add_lstm_op(
    g: GraphBuilder,
    x: int,
    spec: LSTMSpec,
    tensors: LSTMOpTensors,
    *,
    prefix: str,
    batch: int | None,
    time_major: bool,
    reset_state: bool = False,
) -> LSTMOpResult:
    """Add one fused LSTM reading tensor ``x`` ([B,T,I], or [T,B,I] if ``time_major``).

    ``batch`` None makes the state tensors resizable (shape [1, n], signature [-1, n]).
    ``reset_state`` (every non-stateful model) writes each state before the op with
    :func:`_add_state_reset`, so every invoke starts from the same state.
    """
    activation = check_activation(spec)
    _check_names(spec, tensors, prefix)
    inputs, states = _add_inputs(
        g, x, spec, tensors, prefix=prefix, batch=batch, reset_state=reset_state
    )
    in_shape = g.tensor_shape(x)
    in_sig = g.tensor_signature(x)
    out = tensors.output
    output = g.add_tensor(
        f"{prefix}/output",
        in_shape[:-1] + [spec.n_output],
        out.dtype,
        quantization=out.quantization,
        shape_signature=in_sig[:-1] + [spec.n_output],
    )
    intermediates = _add_intermediates(g, tensors.intermediates, prefix)
    opts = schema.UnidirectionalSequenceLSTMOptionsT()
    opts.fusedActivationFunction = activation
    opts.cellClip = float(spec.cell_clip)
    opts.projClip = float(spec.proj_clip)
    opts.timeMajor = bool(time_major)
    opts.asymmetricQuantizeInputs = bool(tensors.asymmetric_quantize_inputs)
    g.add_operator(
        BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM,
        inputs,
        [output],
        BuiltinOptions.UnidirectionalSequenceLSTMOptions,
        opts,
        version=tensors.version,
        intermediates=intermediates or None,
    )
    return LSTMOpResult(output, states["output_state"], states["cell_state"])


def _check_names(spec: LSTMSpec, tensors: LSTMOpTensors, prefix: str) -> None:
    """Refuse descriptions whose weight roles or intermediates do not fit ``spec``."""
    expected = {r.name for r in ROLES if r.is_weight and r.present(spec)}
    if set(tensors.weights) != expected:
        raise ValueError(
            f"{prefix}: tensors for roles {sorted(tensors.weights)} do not match "
            f"{spec.describe()} (expected {sorted(expected)})"
        )
    names = set(tensors.intermediates)
    if names and names != {i.name for i in INTERMEDIATES}:
        raise ValueError(
            f"{prefix}: intermediates {sorted(names)} are not all of "
            f"{[i.name for i in INTERMEDIATES]} (or none)"
        )


def _add_inputs(
    g: GraphBuilder,
    x: int,
    spec: LSTMSpec,
    tensors: LSTMOpTensors,
    *,
    prefix: str,
    batch: int | None,
    reset_state: bool,
) -> tuple[list[int], dict[str, int]]:
    """The op's input tensor indices in role order (-1 for absent ones), and the states'."""
    inputs: list[int] = []
    states: dict[str, int] = {}
    for r in ROLES[:N_INPUTS]:  # 24 always (TFLM refuses the 20-input form)
        if r.kind == "input":
            inputs.append(x)
        elif r.kind == "state":
            desc = tensors.output_state if r.name == "output_state" else tensors.cell_state
            states[r.name] = _add_state(g, r, spec, desc, prefix=prefix, batch=batch)
            if reset_state:
                _add_state_reset(g, states[r.name], f"{prefix}/{r.name}", desc)
            inputs.append(states[r.name])
        elif r.name in tensors.weights:
            inputs.append(_add_weight(g, r, spec, tensors.weights[r.name], prefix))
        else:
            inputs.append(-1)
    return inputs, states


def _add_intermediates(g: GraphBuilder, descs: Mapping[str, TensorDesc], prefix: str) -> list[int]:
    """The intermediate tensors in operator order, named ``intermediate_{index}``."""
    out: list[int] = []
    for i in INTERMEDIATES if descs else ():
        d = descs[i.name]
        shape = d.shape if d.shape is not None else np.shape(d.data)
        name = f"{prefix}/{i.tensor_name}"
        out.append(g.add_tensor(name, shape, d.dtype, quantization=d.quantization))
    return out


def _add_state(
    g: GraphBuilder, r: Role, spec: LSTMSpec, desc: TensorDesc, *, prefix: str, batch: int | None
) -> int:
    """A variable state tensor, [batch, width] (resizable rows when ``batch`` is None)."""
    width = r.shape(spec)[-1]
    return g.add_tensor(
        f"{prefix}/{r.name}",
        [batch if batch is not None else 1, width],
        desc.dtype,
        quantization=desc.quantization,
        is_variable=True,
        shape_signature=[-1 if batch is None else batch, width],
    )


def _add_state_reset(g: GraphBuilder, state: int, name: str, desc: TensorDesc) -> None:
    """``state = ADD(initial, zero)`` before the LSTM op: a file that forgets nothing.

    The fused kernel keeps h and c in variable tensors that persist across invokes, so a
    reused interpreter would start each sample from the previous sample's final state.
    ``initial`` and ``zero`` are two more variable tensors like ``state`` (same shape,
    dtype, quantization; no data): interpreters create variables zeroed (at the zero point)
    and nothing in the graph writes them, so the ADD writes a zero state on every invoke.
    A runner sets an initial state, or carries state from one invoke to the next, by
    writing ``initial``; ``x + 0`` is exact in float and in the integer ADD kernels at equal
    scales. Why this form (measured on LiteRT with and without XNNPACK, tf.lite,
    tflite-runtime 2.14, TFLite Micro): a zeroing op whose inputs are all constants is
    constant-folded at load time (the state then becomes read-only), and an op reading an
    ordinary intermediate tensor may share that tensor's buffer with its variable output,
    which then gets no memory; variables are never shared, constants never folded here.
    """
    shape, sig = g.tensor_shape(state), g.tensor_signature(state)
    extra = [
        g.add_tensor(
            f"{name}/{suffix}",
            shape,
            desc.dtype,
            quantization=desc.quantization,
            is_variable=True,
            shape_signature=sig,
        )
        for suffix in RESET_SUFFIXES
    ]
    g.add_operator(
        BuiltinOperator.ADD,
        extra,
        [state],
        BuiltinOptions.AddOptions,
        schema.AddOptionsT(),
        version=ADD_VERSIONS[desc.dtype],
    )


def _add_weight(g: GraphBuilder, r: Role, spec: LSTMSpec, desc: TensorDesc, prefix: str) -> int:
    """A constant weight tensor, its shape checked against the roles table."""
    if desc.data is None:
        raise ValueError(f"{prefix}/{r.name}: a weight needs data")
    data = np.asarray(desc.data)
    if data.shape != r.shape(spec):
        raise ValueError(f"{prefix}/{r.name}: shape {list(data.shape)} != {list(r.shape(spec))}")
    return g.add_tensor(
        f"{prefix}/{r.name}", data.shape, desc.dtype, data=data, quantization=desc.quantization
    )
