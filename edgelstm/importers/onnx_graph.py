"""Graph plumbing for the ONNX importer: loading, name resolution and layout-glue checks.

Layout glue (Identity/Transpose/Squeeze/Reshape) around LSTM nodes is checked by tracking
labelled axes (T, B, D, H, ...): a glue chain is accepted only when the labels it produces
are exactly the ones the next consumer expects, so no reshape is trusted by its op type.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgelstm._io import read_bytes
from edgelstm.errors import ModelFileError, UnsupportedError

TARGET = "onnx importer"
GLUE = ("Identity", "Transpose", "Squeeze", "Reshape")
Axes = list[tuple[str, ...]]


def load_model(obj: Any) -> tuple[Any, str]:
    """Parse ``obj`` into a ModelProto; anything unreadable is a ModelFileError."""
    import onnx

    path = None
    if isinstance(obj, onnx.ModelProto):
        model, where = obj, "ONNX model"
    else:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            data, where = bytes(obj), "ONNX bytes"
        elif isinstance(obj, (str, os.PathLike)):
            data, where, path = read_bytes(obj, "ONNX model"), os.fspath(obj), obj
        else:
            raise UnsupportedError(
                TARGET, f"expected a ModelProto, bytes or a path, found {type(obj).__name__}"
            )
        model = onnx.ModelProto()
        try:
            model.ParseFromString(data)
        except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
            raise ModelFileError(
                f"{where}: not an ONNX model (truncated/corrupted?): {exc}"
            ) from None
    missing = [
        what
        for what, ok in (
            ("IR version", model.ir_version > 0),
            ("opset_import", len(model.opset_import) > 0),
            ("graph nodes", len(model.graph.node) > 0),
            ("graph outputs", len(model.graph.output) > 0),
        )
        if not ok
    ]
    if missing:  # random bytes often parse as an (almost) empty message
        raise ModelFileError(f"{where}: not a complete ONNX model (no {', '.join(missing)})")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        if path is None:
            raise ModelFileError(f"{where}: weights are in external data; pass the file path")
        from onnx.external_data_helper import load_external_data_for_model

        try:
            load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
        except Exception as exc:  # noqa: BLE001 - missing/unsafe external files
            raise ModelFileError(f"{where}: cannot read external weights ({exc})") from None
    return model, where


_ATTR_TYPES = {"direction": "STRING", "clip": "FLOAT", "activations": "STRINGS"}
_ATTR_TYPES |= {"activation_alpha": "FLOATS", "activation_beta": "FLOATS", "perm": "INTS"}
_ATTR_TYPES |= dict.fromkeys(("hidden_size", "layout", "input_forget", "allowzero"), "INT")
_ATTR_TYPES |= {"output_sequence": "INT", "axes": "INTS"}


def node_attrs(node: Any) -> dict[str, Any]:
    """A node's attributes as Python values; a wrongly typed known attribute is corrupt."""
    from onnx import AttributeProto
    from onnx.helper import get_attribute_value

    out = {}
    for a in node.attribute:
        known = a.type in AttributeProto.AttributeType.values()
        kind = AttributeProto.AttributeType.Name(a.type) if known else "?"
        if a.name in _ATTR_TYPES and kind != _ATTR_TYPES[a.name]:
            raise ModelFileError(
                f"{node.op_type} node {node.name!r}: attribute {a.name!r} expected "
                f"{_ATTR_TYPES[a.name]}, found {kind}"
            )
        value = get_attribute_value(a)
        value = [_text(v) for v in value] if isinstance(value, list) else _text(value)
        out[_text(a.name)] = value
    return out


def _text(value: Any) -> Any:
    """Decode bytes (ONNX strings; invalid UTF-8 in a damaged file stays readable)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class Graph:
    """Name resolution over one GraphProto: producers, constants, inputs, outputs."""

    def __init__(self, graph: Any, where: str) -> None:
        from onnx import numpy_helper

        self.where = where
        self.producer: dict[str, tuple[Any, int]] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.understood: set[int] = set()  # constant, LSTM and glue nodes met while tracing
        for t in graph.initializer:
            self.consts[t.name] = self._array(numpy_helper.to_array, t, t.name)
        self.inputs = {i.name: i for i in graph.input if i.name not in self.consts}
        self.outputs = [o.name for o in graph.output]
        for node in graph.node:
            self.producer.update((name, (node, k)) for k, name in enumerate(node.output) if name)
            if node.op_type == "Constant" and node.output and len(node.attribute) == 1:
                attr = node.attribute[0]
                if attr.name in ("value", "value_float", "value_floats", "value_int", "value_ints"):
                    self.consts[node.output[0]] = self._array(_constant, attr, node.output[0])
                    self.understood.add(id(node))
            elif node.op_type == "Identity" and node.output and _first(node) in self.consts:
                self.consts[node.output[0]] = self.consts[_first(node)]
                self.understood.add(id(node))

    def _array(self, fn: Any, value: Any, name: str) -> np.ndarray:
        try:
            return np.asarray(fn(value))
        except Exception as exc:  # noqa: BLE001 - malformed TensorProto
            raise ModelFileError(f"{self.where}: tensor {name!r} is unreadable ({exc})") from None

    def required(self) -> list[Any]:
        """The nodes the graph outputs depend on, in graph order."""
        seen: dict[int, Any] = {}
        stack = list(self.outputs)
        while stack:
            found = self.producer.get(stack.pop())
            if found and id(found[0]) not in seen:
                seen[id(found[0])] = found[0]
                stack.extend(i for i in found[0].input if i)
        order = {id(n): k for k, (n, _) in enumerate(self.producer.values())}
        return sorted(seen.values(), key=lambda n: order[id(n)])

    def const(self, name: str, what: str) -> np.ndarray:
        """The constant value of ``name``, or a precise reason why it is not one."""
        if name in self.consts:
            return self.consts[name]
        if name in self.inputs:
            raise UnsupportedError(
                TARGET, f"{what} {name!r} is a graph input; it must be an initializer or Constant"
            )
        if name in self.producer:
            op = self.producer[name][0].op_type
            raise UnsupportedError(TARGET, f"{what} {name!r} is computed by a {op} node")
        raise ModelFileError(f"{self.where}: {what} {name!r} is not defined (corrupted model?)")

    def source(self, name: str) -> tuple[Any, int, list[Any]]:
        """Follow ``name`` back through glue: (producer or None for an input, index, glue)."""
        glue: list[Any] = []
        seen: set[str] = set()
        while name not in self.inputs:
            if name in seen:  # a cyclic graph would loop (and grow ``glue``) forever
                raise ModelFileError(f"{self.where}: tensor {name!r} depends on itself (a cycle)")
            seen.add(name)
            if name not in self.producer:
                self.const(name, "tensor")  # raises the precise reason when undefined
                raise UnsupportedError(TARGET, f"tensor {name!r} is a constant, not data")
            node, k = self.producer[name]
            if node.op_type not in GLUE or node.domain not in ("", "ai.onnx"):
                return node, k, glue[::-1]
            self.understood.add(id(node))
            glue.append(node)
            name = _first(node)
        return None, 0, glue[::-1]

    def trace_labels(self, nodes: Sequence[Any], axes: Axes, sizes: dict[str, int]) -> Axes:
        """Apply layout glue to labelled axes; refuse what is not a pure relabelling."""
        for node in nodes:
            axes = norm(self._glue(node, list(axes), sizes), sizes)
        return axes

    def _glue(self, node: Any, axes: Axes, sizes: dict[str, int]) -> Axes:
        attrs, rank = node_attrs(node), len(axes)
        if node.op_type == "Identity":
            return axes
        if node.op_type == "Transpose":
            perm = [int(p) for p in attrs.get("perm", range(rank - 1, -1, -1))]
            if sorted(perm) == list(range(rank)):
                return [axes[p] for p in perm]
        elif node.op_type == "Squeeze":
            given = attrs.get("axes")
            if given is None and len(node.input) > 1 and node.input[1]:
                given = self.const(node.input[1], "Squeeze axes")
            picked = [int(a) for a in np.ravel(given)] if given is not None else []
            in_range = all(-rank <= a < rank for a in picked)
            picked = {a % rank for a in picked} if in_range else set()
            if picked and all(_size(axes[a], sizes) == 1 for a in picked):
                return [a for k, a in enumerate(axes) if k not in picked]
        elif len(node.input) > 1:  # Reshape: keep leading dims (0), merge the rest (-1 or n)
            shape = [int(v) for v in np.ravel(self.const(node.input[1], "Reshape shape"))]
            keep = 0
            while keep < min(len(shape), rank) and shape[keep] == 0 and not attrs.get("allowzero"):
                keep += 1
            merged = tuple(a for ax in axes[keep:] for a in ax)
            if len(shape) == keep == rank:
                return axes
            if len(shape) == keep + 1 < rank + 1 and shape[keep] in (-1, _size(merged, sizes)):
                return [*axes[:keep], merged]
            moved = _unit_axes_moved(axes, shape, sizes, bool(attrs.get("allowzero")))
            if moved is None and not attrs.get("allowzero"):
                moved = _fixed_reshape(axes, shape, sizes)
            if moved is not None:
                return moved
        raise UnsupportedError(
            TARGET, f"{node.op_type} node {node.name!r} is not a layout-only step around an LSTM"
        )

    def static_dims(self, name: str) -> list[int | None] | None:
        """Static dims of graph input ``name`` (None for symbolic ones)."""
        vi = self.inputs.get(name)
        if vi is None or not vi.type.tensor_type.HasField("shape"):
            return None
        dims = vi.type.tensor_type.shape.dim
        return [d.dim_value if d.HasField("dim_value") else None for d in dims]

    def check_accounted(self, required: list[Any]) -> None:
        """Safety net: every node computing the outputs must have been understood."""
        odd = sorted({f"{n.op_type} ({n.name})" for n in required if id(n) not in self.understood})
        if odd:
            raise UnsupportedError(TARGET, f"the graph also computes with {odd}")


def _first(node: Any) -> str:
    """A node's first input name ("" when it has none, which resolves to 'not defined')."""
    return node.input[0] if node.input else ""


def _constant(attr: Any) -> Any:
    from onnx import numpy_helper
    from onnx.helper import get_attribute_value

    value = get_attribute_value(attr)
    if not hasattr(value, "dims"):
        return value
    if value.data_location == value.EXTERNAL:  # never read files named by a Constant node
        raise ValueError("a Constant node with external data")
    return numpy_helper.to_array(value)


def _unit_axes_moved(
    axes: Axes, shape: list[int], sizes: dict[str, int], allowzero: bool
) -> Axes | None:
    """A Reshape that only moves size-1 axes (e.g. [1, T, I] -> [T, 1, I] with a batch of 1,
    which edgelstm emits instead of a Transpose) is that permutation; else None."""
    dims = [_size(ax, sizes) for ax in axes]
    if allowzero or len(shape) != len(axes) or shape.count(-1) > 1:
        return None
    out = [("copy", j) if v == 0 else v for j, v in enumerate(shape)]
    units_in = [k for k, d in enumerate(dims) if d == 1]
    units_out = [j for j, v in enumerate(out) if v == 1 or (v == ("copy", j) and dims[j] == 1)]
    rest_in = [k for k in range(len(dims)) if k not in units_in]
    rest_out = [j for j in range(len(out)) if j not in units_out]
    if len(units_in) != len(units_out) or len(rest_in) != len(rest_out):
        return None
    result: list[tuple[str, ...]] = [()] * len(out)
    for k, j in zip(rest_in, rest_out, strict=True):
        v = out[j]
        if isinstance(v, tuple):  # 0: input dim j copied
            same = j == k or (dims[j] is not None and dims[j] == dims[k])
        else:  # -1 (inferred: the one unknown) or an explicit size
            same = v == -1 or (dims[k] is not None and v == dims[k])
        if not same:
            return None
        result[j] = axes[k]
    for k, j in zip(units_in, units_out, strict=True):
        result[j] = axes[k]
    return result


def _fixed_reshape(axes: Axes, shape: list[int], sizes: dict[str, int]) -> Axes | None:
    """A Reshape to explicit sizes (torch's dynamo exporter writes [T, B, D*H] as numbers)
    that only merges neighbouring axes, checked against the known sizes; else None."""
    dims = [_size(ax, sizes) for ax in axes]
    if None in dims or shape.count(-1) > 1 or any(v < -1 for v in shape):
        return None
    total = int(np.prod(dims))
    known = [dims[j] if v == 0 and j < len(dims) else v for j, v in enumerate(shape)]
    if -1 in known:
        rest = int(np.prod([v for v in known if v != -1]))
        if rest == 0 or total % rest:
            return None
        known[known.index(-1)] = total // rest
    out: Axes = []
    k = 0
    for v in known:
        group: tuple[str, ...] = ()
        prod = 1
        while k < len(axes) and (prod < v or not group):
            group, prod, k = group + axes[k], prod * dims[k], k + 1
        if prod != v:
            return None
        out.append(group)
    while k < len(axes) and dims[k] == 1 and out:  # trailing size-1 axes join the last group
        out[-1], k = out[-1] + axes[k], k + 1
    return out if k == len(axes) else None


def _size(axis: tuple[str, ...], sizes: dict[str, int]) -> int | None:
    if any(a not in sizes for a in axis):
        return None
    return int(np.prod([sizes[a] for a in axis]))


def norm(axes: Axes, sizes: dict[str, int]) -> Axes:
    """Drop size-1 atoms from merged axes: (D, H) with D = 1 is just (H,)."""
    return [tuple(a for a in ax if sizes.get(a) != 1) or ax for ax in axes]
