"""Read edgelstm's own ONNX files back into an :class:`LSTMModel` (the inverse of ``to_onnx``).

The emitter records the model's structure in the file (``edgelstm.ir.spec``,
``edgelstm.ir.options``, ``edgelstm.emit``) and a digest of every direction's weights. The
weights are the initializers it named: a fused direction's ``layer{k}[.backward].W/.R/.B/.P``
stacked [D, ...] in ONNX gate order (one node ``layer{k}`` for a fused bidirectional layer);
a composite direction's ``.WT``/``.RT``/``.B``, per-gate ``.peep_{g}``, ``.ln_{g}`` and
``.b_{g}`` (layer norm), ``.projT`` and ``.proj_bias``; the head's ``head.kernel[T]`` and
``head.bias``. So this reads composite (Scan/Loop) graphs, which the structural importer
(:func:`edgelstm.importers.from_onnx`, used for foreign files) cannot.

A float file reads back bit-exact, checked against the recorded digests: an edited file is
refused, not half-read. A dynamic-int8 file's weights are dequantized (q - zero point) x
scale and the provenance says so, as :func:`edgelstm.targets.tflite.reader.from_tflite` does for
hybrid files: they are the int8 values, not the float ones that were exported.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgelstm.errors import EdgeLSTMError, ModelFileError
from edgelstm.ir.gate_orders import ORDERS, unstack, unstack_peephole
from edgelstm.ir.model import DenseHead, LSTMLayer, LSTMModel
from edgelstm.ir.roles import name_of, present_weight_roles
from edgelstm.ir.spec import LSTMSpec
from edgelstm.ir.weights import LSTMWeights
from edgelstm.targets.onnx.weight_schemes import float_initializers

SPEC_KEY = "edgelstm.spec"


def is_edgelstm_onnx(proto: Any) -> bool:
    """Whether ``proto`` (a ModelProto) was written by edgelstm's ONNX emitter."""
    return any(p.key == SPEC_KEY for p in proto.metadata_props)


def model_from_edgelstm_onnx(proto: Any, where: str) -> LSTMModel:
    """The canonical model of an edgelstm ONNX file (see the module docstring)."""
    try:
        return _read(proto, where)
    except EdgeLSTMError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        raise ModelFileError(
            f"{where}: damaged edgelstm ONNX metadata or weights ({exc})"
        ) from None


REQUIRED_KEYS = (SPEC_KEY, "edgelstm.options", "edgelstm.emit", "edgelstm.weights_digest")
"""Every file the emitter writes has these; one missing means a damaged (truncated) file."""


def _read(proto: Any, where: str) -> LSTMModel:
    meta = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"{where}: edgelstm ONNX metadata incomplete (missing {missing})")
    layers_meta = json.loads(meta[SPEC_KEY])
    options = json.loads(meta["edgelstm.options"])
    fused = {(e["layer"], e["direction"]): e["how"].startswith("fused")
             for e in json.loads(meta["edgelstm.emit"])}  # fmt: skip
    quantize = meta.get("edgelstm.quantize", options.get("quantize", "none"))
    inits = float_initializers(proto)
    layers = []
    for k, entry in enumerate(layers_meta):
        specs = [LSTMSpec.from_dict(entry["forward"])]
        if entry.get("backward") is not None:
            specs.append(LSTMSpec.from_dict(entry["backward"]))
        one_node = len(specs) == 2 and fused.get((k, 0)) and fused.get((k, 1))
        one_node = one_node and specs[0].n_cell == specs[1].n_cell  # the emitter's rule
        directions = []
        for d, spec in enumerate(specs):
            hint = f"layer{k}" + (".backward" if d and not one_node else "")
            if fused.get((k, d), False):
                tensors = _fused(inits, spec, hint, d if one_node else 0)
            else:
                tensors = _composite(inits, spec, hint)
            directions.append(LSTMWeights(spec, tensors))
        layers.append(
            LSTMLayer(
                directions[0],
                directions[1] if len(directions) == 2 else None,
                go_backwards=bool(entry.get("go_backwards", False)),
                reverse=bool(entry.get("reverse", False)),
            )
        )
    provenance = json.loads(meta.get("edgelstm.provenance", "{}"))
    exact = quantize in ("none", None)
    if exact:
        _check_digests(layers, json.loads(meta["edgelstm.weights_digest"]), where)
    else:
        provenance["dequantized"] = (
            f"weights dequantized from the file's {quantize} int8 values, not the float "
            "weights that were exported"
        )
    head = _head(proto, inits, meta, where, exact)
    return LSTMModel(
        tuple(layers),
        head=head,
        return_sequences=bool(options.get("return_sequences", True)),
        return_state=bool(options.get("return_state", False)),
        stateful=bool(options.get("stateful", False)),
        time_major=_time_major(proto, options),
        provenance=provenance,
    )


def _fused(inits: dict, spec: LSTMSpec, hint: str, d: int) -> dict[str, np.ndarray]:
    n = spec.n_cell
    w, r, b = inits[f"{hint}.W"][d], inits[f"{hint}.R"][d], inits[f"{hint}.B"][d]
    if b.shape != (8 * n,) or np.any(b[4 * n :]):  # [Wb, Rb]: the emitter's Rb is zero
        raise ModelFileError(f"{hint}.B: expected [Wb, 0] of {8 * n} values (damaged file?)")
    tensors = unstack("onnx", w, r, b[: 4 * n])
    if spec.peephole:
        tensors |= unstack_peephole("onnx", inits[f"{hint}.P"][d])
    return _present(tensors, spec)


def _composite(inits: dict, spec: LSTMSpec, hint: str) -> dict[str, np.ndarray]:
    gates = ORDERS["onnx"]
    bias = inits.get(f"{hint}.B")
    if spec.layer_norm:  # the bias is added after normalisation, per gate
        bias = np.concatenate([inits[f"{hint}.b_{g}"] for g in gates])
    tensors = unstack("onnx", inits[f"{hint}.WT"].T, inits[f"{hint}.RT"].T, bias)
    for g in gates:
        if spec.peephole and g != "cell":
            tensors[name_of("peephole", g)] = inits[f"{hint}.peep_{g}"]
        if spec.layer_norm:
            tensors[name_of("ln", g)] = inits[f"{hint}.ln_{g}"]
    if spec.projection:
        tensors["projection_weights"] = inits[f"{hint}.projT"].T
        if spec.projection_bias:
            tensors["projection_bias"] = inits[f"{hint}.proj_bias"]
    return _present(tensors, spec)


def _present(tensors: dict[str, np.ndarray], spec: LSTMSpec) -> dict[str, np.ndarray]:
    """The roles ``spec`` has: drops the input gate the emitter materialised for CIFG."""
    keep = {r.name for r in present_weight_roles(spec)}
    return {k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items() if k in keep}


def _check_digests(layers: list[LSTMLayer], digests: list, where: str) -> None:
    for k, layer in enumerate(layers):
        for d, w in enumerate(layer.directions):
            recorded = digests[k][d] if k < len(digests) and d < len(digests[k]) else None
            if w.digest() != recorded:
                raise ModelFileError(
                    f"{where}: layer {k} direction {d}: the weights differ from the digest "
                    "recorded when the file was written (edited after export?); refusing"
                )


def _head(proto: Any, inits: dict, meta: dict, where: str, exact: bool) -> DenseHead | None:
    has_weights = any(k.startswith("head.") for k in inits)
    if "edgelstm.head_digest" not in meta:
        if has_weights:
            raise ModelFileError(f"{where}: a dense head's weights but no head digest; refusing")
        return None
    kernel = inits["head.kernelT"].T if "head.kernelT" in inits else inits["head.kernel"]
    bias = inits["head.bias"]
    softmax = any(n.op_type == "Softmax" for n in proto.graph.node)
    activation = meta.get("edgelstm.head_activation", "softmax" if softmax else "linear")
    if (activation == "softmax") != softmax:  # the graph must compute what the metadata says
        raise ModelFileError(
            f"{where}: the metadata's head activation {activation!r} is not what the graph "
            "computes (damaged file?); refusing"
        )
    head = DenseHead(kernel, bias, activation)
    if exact and head.digest() != meta["edgelstm.head_digest"]:
        raise ModelFileError(f"{where}: the dense head differs from its recorded digest; refusing")
    return head


def _time_major(proto: Any, options: dict) -> bool:
    if "time_major" in options:
        return bool(options["time_major"])
    # files from before time_major was recorded: the input's first dim names the layout
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    first = dims[0] if dims else None
    if first is not None and first.HasField("dim_param"):
        return first.dim_param == "time"
    batch, steps = options.get("batch"), options.get("seq_len")
    return bool(
        first is not None and steps is not None and batch != steps and first.dim_value == steps
    )
