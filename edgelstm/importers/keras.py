"""Keras importer: Keras 3 and tf-keras LSTM layers, models and files -> :class:`LSTMModel`.

Accepted: ``LSTM`` (or ``RNN(LSTMCell)``), ``Bidirectional(LSTM, merge_mode="concat")``,
stacks of them in a Sequential or a single-chain functional model, and one final ``Dense``
(linear or softmax). Anything whose numbers the fused op would not reproduce is refused
with the reason. Keras is imported lazily (only to load files).
"""

from __future__ import annotations

import sys
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import MissingDependencyError, ModelFileError, UnsupportedError, WeightsError
from edgelstm.importers.quiet import framework_quiet
from edgelstm.importers.tf_cell import _activation_name
from edgelstm.ir.gate_orders import unstack
from edgelstm.ir.model import DenseHead, LSTMLayer, LSTMModel
from edgelstm.ir.weights import LSTMWeights

_FLAVORS = {"keras": "keras", "tf_keras": "tf_keras", "tensorflow": "tf.keras"}
_PASS_THROUGH = ("InputLayer", "Dropout")  # identity at inference
_MODEL_TYPES = ("Sequential", "Functional")


def _flavor_of_class(cls: type) -> str | None:
    """'keras' (Keras 3), 'tf_keras', 'tf.keras' (TF's internal copy) or None."""
    module = cls.__module__
    top = module.split(".")[0]
    if top == "tensorflow" and ".keras" not in module:
        return None
    return _FLAVORS.get(top)


def _flavor(obj: Any) -> str | None:
    return _flavor_of_class(type(obj))


def _kind(obj: Any) -> str | None:
    """The Keras class name of ``obj``, or None when it is not a Keras built-in class."""
    return type(obj).__name__ if _flavor(obj) else None


def _label(layer: Any) -> str:
    return f"{type(layer).__name__} {getattr(layer, 'name', '?')!r}"


def _array(variable: Any) -> np.ndarray:
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)


def _lstm_weights(layer: Any, target: str) -> LSTMWeights:
    """Canonical weights of one ``LSTM``/``RNN(LSTMCell)`` layer (gates i, f, c, o)."""
    cell = getattr(layer, "cell", None)
    if _kind(cell) != "LSTMCell":
        raise UnsupportedError(
            target, f"{_label(layer)}: cell {type(cell).__name__} is not a Keras LSTMCell"
        )
    if not getattr(cell, "built", False) or getattr(cell, "kernel", None) is None:
        raise WeightsError(f"{_label(layer)}: not built (call it on data or build it first)")
    try:
        gate = _activation_name(cell.recurrent_activation, target, "recurrent_activation")
    except UnsupportedError:
        gate = None
    if gate != "sigmoid":
        fn = cell.recurrent_activation
        raise UnsupportedError(
            target,
            f"{_label(layer)}: recurrent_activation {getattr(fn, '__name__', fn)!r}: expected "
            "sigmoid (the fused op's gates are the logistic sigmoid; Keras 3 hard_sigmoid is "
            "x/6+0.5 and tf_keras hard_sigmoid 0.2x+0.5, neither matches)",
        )
    try:
        activation = _activation_name(cell.activation, target)
    except UnsupportedError as exc:
        raise UnsupportedError(target, f"{_label(layer)}: {exc.reason}") from None
    bias = _array(cell.bias) if cell.use_bias else None
    tensors = unstack(
        "keras", _array(cell.kernel), _array(cell.recurrent_kernel), bias, gate_axis=1
    )
    return LSTMWeights.from_tensors(tensors, activation=activation)


def _is_lstm(layer: Any) -> bool:
    kind = _kind(layer)
    return kind == "LSTM" or (kind == "RNN" and _kind(getattr(layer, "cell", None)) == "LSTMCell")


def _options(layer: Any) -> dict[str, bool]:
    """The RNN options that the canonical model keeps."""
    return {
        "return_sequences": bool(layer.return_sequences),
        "return_state": bool(layer.return_state),
        "stateful": bool(getattr(layer, "stateful", False)),
        "time_major": bool(getattr(layer, "time_major", False)),
    }


def _convert_layer(layer: Any, target: str) -> tuple[LSTMLayer, dict[str, bool]]:
    """One recurrent Keras layer -> (canonical layer, its options)."""
    if _is_lstm(layer):
        options = _options(layer)
        return LSTMLayer(
            _lstm_weights(layer, target), go_backwards=bool(layer.go_backwards)
        ), options
    # Bidirectional
    if layer.merge_mode != "concat":
        raise UnsupportedError(
            target,
            f"{_label(layer)}: merge_mode {layer.merge_mode!r}: only 'concat' is supported "
            "(the emitted ops concatenate the directions' outputs)",
        )
    fw, bw = layer.forward_layer, layer.backward_layer
    for inner in (fw, bw):
        if not _is_lstm(inner):
            raise UnsupportedError(target, f"{_label(layer)} wraps {_label(inner)}, not an LSTM")
    if fw.go_backwards or not bw.go_backwards:
        raise UnsupportedError(
            target,
            f"{_label(layer)}: expected a forward layer with go_backwards=False and a backward "
            f"one with go_backwards=True, found {fw.go_backwards} / {bw.go_backwards}",
        )
    options = _options(fw)
    options["return_state"] = bool(layer.return_state)
    if _options(bw) | {"return_state": options["return_state"]} != options:
        raise UnsupportedError(target, f"{_label(layer)}: forward and backward options differ")
    return LSTMLayer(_lstm_weights(fw, target), _lstm_weights(bw, target)), options


def _head(layer: Any, target: str) -> DenseHead:
    """A Dense layer as the model head (linear or softmax only)."""
    activation = None
    for module in ("keras", "tf_keras"):
        acts = getattr(sys.modules.get(module), "activations", None)
        for name in ("linear", "softmax"):
            if acts is not None and layer.activation is getattr(acts, name, None):
                activation = name
    if activation is None:
        fn = layer.activation
        raise UnsupportedError(
            target,
            f"{_label(layer)}: activation {getattr(fn, '__name__', fn)!r}: expected linear or "
            "softmax for the dense head",
        )
    kernel = _array(layer.kernel)
    bias = _array(layer.bias) if layer.use_bias else np.zeros(kernel.shape[1], np.float32)
    return DenseHead(kernel.T, bias, activation)


def _outputs(obj: Any) -> list[Any]:
    out = obj.output
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _chain(model: Any, target: str) -> list[Any]:
    """The model's layers, checked to form one chain input -> ... -> output (functional)."""
    layers = list(model.layers)
    if _kind(model) == "Sequential":
        return layers
    if len(model.inputs) != 1:
        raise UnsupportedError(target, f"model has {len(model.inputs)} inputs, expected 1")
    previous = [model.inputs[0]]
    for layer in layers:
        if _kind(layer) == "InputLayer":
            continue
        if len(getattr(layer, "_inbound_nodes", ())) != 1 or layer.input is not previous[0]:
            raise UnsupportedError(
                target,
                f"{_label(layer)}: the model is not a single chain of layers (expected this "
                "layer to be called once, on the previous layer's output)",
            )
        previous = _outputs(layer)
    if list(model.outputs) not in (previous[:1], previous):
        raise UnsupportedError(
            target, "model outputs are not the last layer's output (and states): not a chain"
        )
    return layers


def _refuse_foreign(obj: Any) -> None:
    """Refuse non-Keras objects; name subclasses of Keras classes (their call() is unknown)."""
    base = next((c for c in type(obj).__mro__ if _flavor_of_class(c)), None)
    if base is None:
        raise UnsupportedError(
            "keras", f"expected a Keras model, layer or file, found {type(obj).__qualname__}"
        )
    what = "model" if hasattr(obj, "layers") else "layer"
    raise UnsupportedError(
        _flavor_of_class(base) or "keras",
        f"subclassed {what} {type(obj).__name__} (of {base.__name__}): its call() is arbitrary "
        "Python; use the built-in layers in a Sequential or functional model",
    )


def _convert(obj: Any, provenance: dict[str, Any]) -> LSTMModel:
    target = _flavor(obj)
    if target is None:
        _refuse_foreign(obj)
    kind = _kind(obj)
    model_return_state = None
    if kind in _MODEL_TYPES:
        layers = _chain(obj, target)
        if kind == "Functional":
            model_return_state = len(obj.outputs) > 1
    else:
        layers = [obj]

    converted: list[LSTMLayer] = []
    options: list[dict[str, bool]] = []
    head = None
    for layer in layers:
        kind = _kind(layer)
        if kind in _PASS_THROUGH:
            continue
        if head is not None:
            raise UnsupportedError(target, f"{_label(layer)} after the Dense head: not supported")
        if _is_lstm(layer) or kind == "Bidirectional":
            lstm, opts = _convert_layer(layer, target)
            converted.append(lstm)
            options.append(opts)
        elif kind == "Dense" and converted:
            head = _head(layer, target)
        elif kind == "Masking":
            raise UnsupportedError(
                target, f"{_label(layer)}: masking changes which steps run; not supported"
            )
        else:
            raise UnsupportedError(
                target,
                f"layer {_label(layer)} is not supported (expected LSTM, Bidirectional(LSTM), "
                "Dropout, and one final Dense)",
            )
    if not converted:
        raise UnsupportedError(target, f"{_label(obj)} contains no LSTM layer")
    for k, opts in enumerate(options[:-1]):
        if not opts["return_sequences"]:
            raise UnsupportedError(
                target, f"layer {k}: inner LSTM layers need return_sequences=True"
            )
    for field in ("stateful", "time_major"):
        values = {opts[field] for opts in options}
        if len(values) > 1:
            raise UnsupportedError(target, f"{field} differs between the LSTM layers")
    last = options[-1]
    return_state = last["return_state"] if model_return_state is None else model_return_state
    provenance = {"source": target, "layers": [_label(x) for x in layers], **provenance}
    return LSTMModel(
        layers=tuple(converted),
        head=head,
        return_sequences=last["return_sequences"],
        return_state=return_state and last["return_state"],
        stateful=last["stateful"],
        time_major=last["time_major"],
        provenance=provenance,
    )


def _load_keras3(path: Path) -> Any:
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True)


def _load_tf_keras(path: Path) -> Any:
    import tf_keras
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    # tf_keras's .h5 loader ignores safe_mode: force it, so no pickled lambda can run.
    with SafeModeScope(True):
        return tf_keras.models.load_model(path, compile=False, safe_mode=True)


def _load(path: Path) -> Any:
    """Load a .keras (Keras 3 first) or .h5 (tf_keras first) file; any failure is a file error."""
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        loaders = (("keras", _load_keras3), ("tf_keras", _load_tf_keras))
    elif suffix in (".h5", ".hdf5"):
        loaders = (("tf_keras", _load_tf_keras), ("keras", _load_keras3))
    else:
        raise ModelFileError(f"{path}: expected a .keras or .h5 file, found {suffix or 'none'}")
    errors = []
    for name, loader in loaders:
        try:
            with framework_quiet():  # TF's import-time log lines are not edgelstm's output
                return loader(path)
        except ImportError as exc:
            errors.append(f"{name}: not installed ({exc})")
        except Exception as exc:  # noqa: BLE001 - any loader failure means an unusable file
            errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
    if all(": not installed (" in e for e in errors):
        raise MissingDependencyError(
            f"{path}: reading {suffix} needs TensorFlow/Keras: pip install 'edgelstm[tf]'"
        )
    raise ModelFileError(f"{path}: cannot load as a Keras model ({'; '.join(errors)})")


def from_keras(obj: Any) -> LSTMModel:
    """Import a Keras 3 / tf-keras LSTM layer, model, or ``.keras``/``.h5`` file path."""
    if isinstance(obj, (str, PathLike)):
        path = Path(obj)
        return _convert(_load(path), {"path": str(path)})
    return _convert(obj, {})
