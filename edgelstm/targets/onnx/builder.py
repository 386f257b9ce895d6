"""A tiny deterministic graph builder: unique names, initializers, nodes, subgraphs.

Every name is derived from a hint and a counter, so the same model always yields the same
graph (and, serialized, the same bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Dim = int | str | None


class GraphBuilder:
    """Collects nodes and initializers of one graph; subgraphs share the name registry.

    Constants always go to the outermost builder's initializers (subgraphs reference them
    from the outer scope), so quantizers and optimizers see every weight as an initializer.
    """

    def __init__(self, parent: GraphBuilder | None = None) -> None:
        self._root = parent._root if parent is not None else self
        self._used: set[str] = set() if parent is None else self._root._used
        self._counts: dict[str, int] = {} if parent is None else self._root._counts
        self._ints: dict[tuple[str, tuple[int, ...]], str] = {}
        self._claimed: set[str] = set()
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []

    def claim(self, name: str) -> None:
        """Keep ``name`` from :meth:`fresh` until :meth:`reserve` takes it (output names)."""
        self.reserve(name)
        self._root._claimed.add(name)

    def reserve(self, name: str) -> str:
        """Take an exact name (graph inputs and outputs); a clash is a bug."""
        if name in self._root._claimed:
            self._root._claimed.remove(name)
            return name
        if name in self._used:
            raise ValueError(f"duplicate graph name {name!r}")
        self._used.add(name)
        return name

    def fresh(self, hint: str) -> str:
        """A new unique name ``hint`` or ``hint_<n>``."""
        n = self._counts.get(hint, 0)
        while True:
            name = hint if n == 0 else f"{hint}_{n}"
            n += 1
            if name not in self._used:
                self._counts[hint] = n
                self._used.add(name)
                return name

    def const(self, hint: str, value: Any, dtype: Any = np.float32) -> str:
        """Add an initializer (to the outermost graph) and return its name."""
        arr = np.array(value, dtype=dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
        name = self.fresh(hint)
        self._root.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def ints(self, hint: str, values: Sequence[int]) -> str:
        """An int64 1-D constant (shapes, axes, split sizes), shared by equal requests."""
        key = (hint, tuple(int(v) for v in values))
        cache = self._root._ints
        if key not in cache:
            cache[key] = self.const(hint, list(key[1]), np.int64)
        return cache[key]

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: int | Sequence[str] = 1,
        hint: str | None = None,
        domain: str = "",
        **attrs: Any,
    ) -> Any:
        """Add a node; returns its output name (one output) or the list of names."""
        hint = hint or op_type.lower()
        if isinstance(outputs, int):
            names = [self.fresh(hint) for _ in range(outputs)]
        else:
            names = list(outputs)
        node = helper.make_node(
            op_type, list(inputs), names, name=self.fresh(f"{hint}_node"), domain=domain, **attrs
        )
        self.nodes.append(node)
        return names[0] if len(names) == 1 else names

    def add_input(
        self, name: str, shape: Sequence[Dim], elem: int = TensorProto.FLOAT, fresh: bool = False
    ) -> str:
        """Declare a graph input ``name`` (``fresh``: a unique name derived from it)."""
        name = self.fresh(name) if fresh else self.reserve(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem, list(shape)))
        return name

    def add_default_input(self, name: str, shape: Sequence[Dim], default: np.ndarray) -> str:
        """A graph input that may be omitted: an initializer of the same name is its default."""
        self.add_input(name, shape, helper.np_dtype_to_tensor_dtype(default.dtype))
        self._root.initializers.append(numpy_helper.from_array(np.array(default, order="C"), name))
        return name

    def add_output(
        self,
        value: str,
        name: str | None,
        shape: Sequence[Dim],
        elem: int = TensorProto.FLOAT,
    ) -> str:
        """Expose ``value`` as a graph output: itself (``name`` None) or renamed by Identity."""
        if name is not None:
            value = self.op("Identity", [value], [self.reserve(name)])
        self.outputs.append(helper.make_tensor_value_info(value, elem, list(shape)))
        return value

    def graph(self, name: str) -> onnx.GraphProto:
        return helper.make_graph(
            self.nodes, name, self.inputs, self.outputs, initializer=self.initializers
        )
