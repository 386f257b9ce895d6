"""TF v1 ``LSTMCell`` importer: a built cell or a TF1 checkpoint -> canonical :class:`LSTMModel`.

TF stores one kernel [I+P, 4N] (input rows, then recurrent rows) with gates i, j(=cell), f, o,
and adds ``forget_bias`` at run time (it is not stored): we fold it into ``forget_gate_bias``.
TF's clips are None for "off" but 0.0 means "clip to zero", which the canonical spec (0 = off)
cannot express, so a clip <= 0 is refused. TensorFlow is imported lazily, never at import time.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from os import PathLike
from typing import Any

import numpy as np

from edgelstm.errors import ModelFileError, SpecError, UnsupportedError, WeightsError
from edgelstm.ir.gate_orders import unstack
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.roles import name_of
from edgelstm.ir.spec import ACTIVATIONS
from edgelstm.ir.weights import LSTMWeights

_CELL_TYPES = ("LSTMCell", "BasicLSTMCell")
_DIAGS = {"input": "w_i_diag", "forget": "w_f_diag", "output": "w_o_diag"}
_PROJECTION = "projection/kernel"

# Callables that implement a canonical activation, by (module in sys.modules, attribute).
_ACTIVATION_ATTRS: tuple[tuple[str, str, str], ...] = (
    ("tensorflow", "math.tanh", "tanh"),
    ("tensorflow", "nn.relu", "relu"),
    ("tensorflow", "nn.relu6", "relu6"),
    ("tensorflow", "math.sigmoid", "sigmoid"),
    ("tensorflow", "identity", "linear"),
) + tuple(
    (module, attr, canonical)
    for module in ("tf_keras", "keras", "tensorflow.python.keras")
    for attr, canonical in (
        ("activations.tanh", "tanh"),
        ("activations.relu", "relu"),
        ("activations.relu6", "relu6"),
        ("activations.sigmoid", "sigmoid"),
        ("activations.linear", "linear"),
        ("activations.hard_tanh", "relu_n1_to_1"),
    )
)


def _activation_name(fn: Any, target: str, field: str = "activation") -> str:
    """Canonical name of an activation given as a name or a framework function.

    Functions are matched by identity against the known framework functions (only modules
    already imported can have produced ``fn``), so a look-alike custom function is refused.
    """
    if isinstance(fn, str):
        if fn in ACTIVATIONS:
            return fn
        raise UnsupportedError(target, f"{field} {fn!r}: expected one of {', '.join(ACTIVATIONS)}")
    for module_name, attr, canonical in _ACTIVATION_ATTRS:
        obj: Any = sys.modules.get(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part, None)
        if obj is not None and obj is fn:
            return canonical
    label = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__name__', repr(fn))}"
    raise UnsupportedError(
        target,
        f"{field} {label}: not a known activation (supported: {', '.join(ACTIVATIONS)}; "
        "gates must be the logistic sigmoid)",
    )


def _clip(value: Any, field: str, target: str) -> float:
    """TF clip option (None = off) -> canonical clip (0 = off)."""
    if value is None:
        return 0.0
    clip = float(value)
    if not math.isfinite(clip) or clip <= 0:
        raise UnsupportedError(
            target,
            f"{field}={value!r}: TF clips to [-{value}, {value}] (None means no clip); "
            "expected None or a finite value > 0",
        )
    return clip


def _finite(value: Any, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{field}: expected a number, found {value!r}") from None
    if not math.isfinite(number):
        raise SpecError(f"{field}: expected a finite number, found {value!r}")
    return number


def _build(
    arrays: Mapping[str, np.ndarray],
    *,
    use_peepholes: bool,
    num_proj: int | None,
    cell_clip: Any,
    proj_clip: Any,
    forget_bias: Any,
    activation: Any,
    target: str,
    names: Mapping[str, str] | None = None,
) -> LSTMWeights:
    """Canonical weights from TF variables keyed ``kernel``, ``bias``, ``w_*_diag``, ...

    ``names`` maps those keys to the caller's full variable names for error messages.
    """
    label = dict(names or {}).get
    kernel = np.asarray(arrays["kernel"], dtype=np.float64)
    bias = np.asarray(arrays["bias"], dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[1] % 4 or kernel.shape[1] == 0:
        raise WeightsError(
            f"{label('kernel', 'kernel')}: expected shape [n_input + n_output, 4 * n_cell], "
            f"found {list(kernel.shape)}"
        )
    n_cell = kernel.shape[1] // 4
    if bias.shape != (4 * n_cell,):
        raise WeightsError(
            f"{label('bias', 'bias')}: expected shape [{4 * n_cell}], found {list(bias.shape)}"
        )
    n_output = n_cell if num_proj is None else int(num_proj)
    n_input = kernel.shape[0] - n_output
    if n_input < 1:
        raise WeightsError(
            f"{label('kernel', 'kernel')}: expected more than n_output = {n_output} rows "
            f"(input rows, then recurrent rows), found {kernel.shape[0]}"
        )
    tensors = unstack("tf", kernel[:n_input], kernel[n_input:], bias, gate_axis=1)
    tensors["forget_gate_bias"] = tensors["forget_gate_bias"] + _finite(forget_bias, "forget_bias")
    if use_peepholes:
        for gate, key in _DIAGS.items():
            tensors[name_of("peephole", gate)] = _shaped(arrays[key], (n_cell,), label(key, key))
    if num_proj is not None:
        proj = _shaped(arrays[_PROJECTION], (n_cell, n_output), label(_PROJECTION, _PROJECTION))
        tensors["projection_weights"] = proj.T
    return LSTMWeights.from_tensors(
        tensors,
        cell_clip=_clip(cell_clip, "cell_clip", target),
        proj_clip=_clip(proj_clip, "proj_clip", target) if num_proj is not None else 0.0,
        activation=_activation_name(activation, target),
    )


def _shaped(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise WeightsError(f"{name}: expected shape {list(shape)}, found {list(arr.shape)}")
    return arr


def _read_variables(variables: Mapping[str, Any], session: Any) -> dict[str, np.ndarray]:
    """Variable values: eagerly, or through ``session`` / the default session in graph mode."""
    import tensorflow as tf

    if session is None and tf.executing_eagerly():
        try:
            return {k: np.asarray(tf.convert_to_tensor(v).numpy()) for k, v in variables.items()}
        except (AttributeError, NotImplementedError):
            pass  # variables of a v1 graph (symbolic outside it): they need a session
    session = session or tf.compat.v1.get_default_session()
    if session is None:
        raise UnsupportedError(
            "tf.LSTMCell",
            "the cell's variables live in a graph: pass session=... "
            "(or call inside `with session.as_default():`)",
        )
    with session.graph.as_default():
        fetches = {k: tf.convert_to_tensor(v) for k, v in variables.items()}
    return {k: np.asarray(v) for k, v in session.run(fetches).items()}


def from_tf_cell(cell: Any, *, session: Any = None) -> LSTMModel:
    """Import a built ``tf.compat.v1.nn.rnn_cell.LSTMCell`` (or ``BasicLSTMCell``).

    In graph mode pass the ``session`` holding the variable values (or make it the default).
    """
    kind = type(cell).__name__
    if kind not in _CELL_TYPES or not hasattr(cell, "_num_units"):
        raise UnsupportedError(
            "tf.LSTMCell",
            f"expected a tf.compat.v1.nn.rnn_cell.LSTMCell or BasicLSTMCell, found "
            f"{type(cell).__module__}.{kind} (Keras layers and cells: use from_keras)",
        )
    target = f"tf.{kind}"
    if not getattr(cell, "built", False) or getattr(cell, "_kernel", None) is None:
        raise WeightsError(f"{target}: the cell is not built (call it once or cell.build(shape))")
    peepholes = bool(getattr(cell, "_use_peepholes", False))
    num_proj = getattr(cell, "_num_proj", None)
    variables = {"kernel": cell._kernel, "bias": cell._bias}
    if peepholes:
        variables.update({key: getattr(cell, f"_{key}") for key in _DIAGS.values()})
    if num_proj is not None:
        variables[_PROJECTION] = cell._proj_kernel
    forget_bias = getattr(cell, "_forget_bias", 1.0)
    weights = _build(
        _read_variables(variables, session),
        use_peepholes=peepholes,
        num_proj=num_proj,
        cell_clip=getattr(cell, "_cell_clip", None),
        proj_clip=getattr(cell, "_proj_clip", None),
        forget_bias=forget_bias,
        activation=cell._activation,
        target=target,
        names={k: getattr(v, "name", k) for k, v in variables.items()},
    )
    provenance = {"source": target, "forget_bias_folded": float(forget_bias)}
    return LSTMModel.of(weights, provenance=provenance)


def _load_checkpoint(path: str | PathLike[str]) -> tuple[Any, dict[str, list[int]]]:
    """A TF checkpoint (prefix or directory): its reader and its variable shapes."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(path))
        return reader, dict(reader.get_variable_to_shape_map())
    except (tf.errors.OpError, ValueError, OSError) as exc:
        raise ModelFileError(f"{path}: cannot read TF checkpoint ({exc})") from None


def _detect_prefix(shapes: Mapping[str, Any]) -> str:
    """The one scope holding an LSTM ``kernel`` [*, 4N] with a matching ``bias`` [4N]."""
    found = []
    for name in shapes:
        if not (name == "kernel" or name.endswith("/kernel")) or name.endswith(_PROJECTION):
            continue
        prefix = name[: -len("kernel")]
        if prefix + "bias" not in shapes:
            continue
        k, b = tuple(shapes[name]), tuple(shapes[prefix + "bias"])
        if len(k) == 2 and k[1] % 4 == 0 and b == (k[1],):
            found.append(prefix)
    if len(found) != 1:
        what = f"several: {sorted(found)}" if found else "none"
        raise WeightsError(
            f"checkpoint: expected exactly one LSTM scope with 'kernel' and 'bias', found {what}; "
            "pass prefix=..."
        )
    return found[0]


def from_tf_checkpoint(
    source: str | PathLike[str] | Mapping[str, Any],
    *,
    prefix: str | None = None,
    use_peepholes: bool = False,
    cell_clip: float | None = None,
    num_proj: int | None = None,
    proj_clip: float | None = None,
    forget_bias: float = 1.0,
    activation: Any = "tanh",
) -> LSTMModel:
    """Import an LSTMCell's variables from a TF1 checkpoint or a dict of arrays.

    Variable names are ``{prefix}kernel``, ``bias``, ``w_i_diag``/``w_f_diag``/``w_o_diag``,
    ``projection/kernel`` (e.g. prefix ``rnn/lstm_cell/``; found automatically when there is
    exactly one LSTM scope). The cell options are not stored in checkpoints: give them.
    """
    if isinstance(source, Mapping):
        arrays = {str(k): np.asarray(v) for k, v in source.items()}
        shapes: dict[str, Any] = {k: v.shape for k, v in arrays.items()}

        def get(name: str) -> np.ndarray:
            return arrays[name]

        origin = "dict"
    else:
        reader, shapes = _load_checkpoint(source)

        def get(name: str) -> np.ndarray:
            try:
                return np.asarray(reader.get_tensor(name))
            except Exception as exc:  # noqa: BLE001 - any read failure means a damaged file
                raise ModelFileError(f"{source}: cannot read variable {name!r} ({exc})") from None

        origin = str(source)
    names = sorted(shapes)
    if prefix is None:
        prefix = _detect_prefix(shapes)
    keys = ["kernel", "bias"]
    if use_peepholes:
        keys += list(_DIAGS.values())
    if num_proj is not None:
        keys.append(_PROJECTION)
    missing = [prefix + k for k in keys if prefix + k not in shapes]
    if missing:
        raise WeightsError(
            f"checkpoint {origin}: missing variable(s) {missing} for use_peepholes={use_peepholes}"
            f", num_proj={num_proj}; found {names[:20]}"
        )
    target = "tf.checkpoint"
    weights = _build(
        {k: get(prefix + k) for k in keys},
        use_peepholes=use_peepholes,
        num_proj=num_proj,
        cell_clip=cell_clip,
        proj_clip=proj_clip,
        forget_bias=forget_bias,
        activation=activation,
        target=target,
        names={k: prefix + k for k in keys},
    )
    provenance = {
        "source": target,
        "path": origin,
        "prefix": prefix,
        "forget_bias_folded": float(forget_bias),
    }
    return LSTMModel.of(weights, provenance=provenance)
