"""Hypothesis: mutated exporter-style ONNX graphs given to the intake.

Property: ``find_lstms``, ``from_onnx(..., lstm=NAME)`` (every LSTM the intake lists, and the
whole graph) and ``inspect_model`` + its text/JSON output either work or raise an
:class:`EdgeLSTMError`; never another exception. The seeds are small graphs with the glue
exporters write around LSTMs (zero states from ``Shape -> Gather -> Concat -> Expand`` and
``ConstantOfShape``, per-layer ``Slice`` of a state input, ``Transpose``/``Reshape``/
``Squeeze`` between layers, LSTMs inside ``If`` branches reading outer-scope weights); the
mutations edit node attributes, graph-input shapes, initializer dtypes/dims/bytes, and drop
or rename edges, anywhere (subgraphs included). ``tools/fuzz_long.py`` runs the same
:data:`PROPERTIES` longer.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _fuzz import Property, as_param, run_property
from hypothesis import strategies as st

from edgelstm.errors import EdgeLSTMError

H, I = 4, 3  # noqa: E741 - the ONNX spec's names


def _init(name: str, value: Any) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value), name)


def _weights(rng: np.random.Generator, prefix: str, n_dir: int, n_in: int) -> list[Any]:
    shapes = {"W": (n_dir, 4 * H, n_in), "R": (n_dir, 4 * H, H), "B": (n_dir, 8 * H)}
    return [
        _init(prefix + k, rng.uniform(-0.5, 0.5, s).astype(np.float32)) for k, s in shapes.items()
    ]


def _model(nodes: list, inputs: list, outputs: list[str], inits: list) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _zero_states() -> bytes:
    """torch.onnx legacy style: zeros [2, B, H] from the batch size, a bidirectional LSTM,
    Transpose + Reshape merging the directions, a second LSTM from ConstantOfShape zeros."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)
    n = helper.make_node
    nodes = [
        n("Shape", ["x"], ["s"]),
        n("Gather", ["s", "one"], ["b"], axis=0),
        n("Unsqueeze", ["b", "ax0"], ["b1"]),
        n("Concat", ["two", "b1", "h"], ["shape"], axis=0),
        n("Expand", ["zero", "shape"], ["h0"]),
        n(
            "LSTM",
            ["x", "0W", "0R", "0B", "", "h0", "h0"],
            ["y0", "yh0"],
            name="l0",
            hidden_size=H,
            direction="bidirectional",
        ),
        n("Transpose", ["y0"], ["y0t"], perm=[0, 2, 1, 3]),
        n("Reshape", ["y0t", "merge"], ["x1"]),
        n("Concat", ["d1", "b1", "h"], ["shape1"], axis=0),
        n("ConstantOfShape", ["shape1"], ["z1"], value=helper.make_tensor("v", 1, [1], [0.0])),
        n("LSTM", ["x1", "1W", "1R", "1B", "", "z1", "z1"], ["y1"], name="l1", hidden_size=H),
        n("Squeeze", ["y1", "ax1"], ["y"]),
    ]
    inits = [
        *_weights(rng, "0", 2, I),
        *_weights(rng, "1", 1, 2 * H),
        *(_init(k, np.array(v, np.int64)) for k, v in (("one", 1), ("ax0", [0]), ("ax1", [1]))),
        *(_init(k, np.array(v, np.int64)) for k, v in (("two", [2]), ("d1", [1]), ("h", [H]))),
        _init("merge", np.array([0, 0, -1], np.int64)),
        _init("zero", np.array(0.0, np.float32)),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", I])
    return _model(nodes, [x], ["y", "yh0"], inits)


def _state_inputs() -> bytes:
    """The VAD pattern: states are graph inputs [2, B, H], sliced per layer."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(2)
    n = helper.make_node
    nodes = [
        n("Slice", ["h", "s0", "s1", "ax0"], ["h0"]),
        n("Slice", ["c", "s0", "s1", "ax0"], ["c0"]),
        n("Slice", ["h", "s1", "s2", "ax0"], ["h1"]),
        n("Slice", ["c", "s1", "s2", "ax0"], ["c1"]),
        n(
            "LSTM",
            ["x", "0W", "0R", "0B", "", "h0", "c0"],
            ["y0", "hn0", "cn0"],
            name="a",
            hidden_size=H,
        ),
        n("Squeeze", ["y0", "ax1"], ["x1"]),
        n(
            "LSTM",
            ["x1", "1W", "1R", "1B", "", "h1", "c1"],
            ["y1", "hn1", "cn1"],
            name="b",
            hidden_size=H,
        ),
        n("Concat", ["hn0", "hn1"], ["hn"], axis=1),
    ]
    ints = (("s0", [0]), ("s1", [1]), ("s2", [2]), ("ax0", [0]), ("ax1", [1]))
    inits = [
        *_weights(rng, "0", 1, I),
        *_weights(rng, "1", 1, H),
        *(_init(k, np.array(v, np.int64)) for k, v in ints),
    ]
    ins = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, I]),
        helper.make_tensor_value_info("h", TensorProto.FLOAT, [2, 1, H]),
        helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 1, H]),
    ]
    return _model(nodes, ins, ["y1", "hn", "cn1"], inits)


def _if_lstms() -> bytes:
    """An If whose branches each hold an LSTM reading the outer graph's weights."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)

    def branch(tag: str, direction: str) -> Any:
        node = helper.make_node(
            "LSTM",
            ["x", f"{tag}W", f"{tag}R", f"{tag}B"],
            [f"y_{tag}"],
            name=f"lstm_{tag}",
            hidden_size=H,
            direction=direction,
        )
        out = helper.make_tensor_value_info(f"y_{tag}", TensorProto.FLOAT, None)
        return helper.make_graph([node], f"branch_{tag}", [], [out])

    cond = helper.make_node(
        "If",
        ["cond"],
        ["y"],
        name="if",
        then_branch=branch("t", "forward"),
        else_branch=branch("e", "reverse"),
    )
    ins = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 2, I]),
        helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
    ]
    return _model([cond], ins, ["y"], [*_weights(rng, "t", 1, I), *_weights(rng, "e", 1, I)])


@functools.cache
def seeds() -> dict[str, bytes]:
    return {"zero_states": _zero_states(), "state_inputs": _state_inputs(), "if": _if_lstms()}


# -- mutations ------------------------------------------------------------------------------


def _graphs(graph: Any) -> list[Any]:
    """``graph`` and every subgraph in it."""
    out = [graph]
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == attr.GRAPH else list(attr.graphs):
                out += _graphs(sub)
    return out


_ATTR_NAMES = ("hidden_size", "direction", "layout", "perm", "axis", "axes", "value", "to")
_ATTR_VALUES: tuple[Any, ...] = (-5, 0, 2**40, "sideways", [5, 0], [], 1e-30, float("nan"))
_ATTR_VALUES += (7, b"\xff\xfe", [-1], 1, 2)


def _tensor_value(v: int) -> Any:
    from onnx import helper

    return [
        helper.make_tensor("v", 1, [1], [1.5]),  # non-zero "zeros"
        helper.make_tensor("v", 7, [2], [1, 2]),  # int64, two values
        helper.make_tensor("v", 1, [], [0.0]),  # scalar
        helper.make_tensor("v", 8, [1], [b"a"]),  # string
    ][v % 4]


def _edit_attr(node: Any, v: int) -> None:
    from onnx import AttributeProto, helper

    name = _ATTR_NAMES[v % len(_ATTR_NAMES)]
    value = _tensor_value(v) if name == "value" else _ATTR_VALUES[v % len(_ATTR_VALUES)]
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    try:
        node.attribute.append(helper.make_attribute(name, value))
    except (TypeError, ValueError):
        node.attribute.append(AttributeProto(name=name, type=AttributeProto.INT, i=-1))


def _mutate(proto: Any, op: tuple[str, int, int]) -> None:
    """One edit anywhere in ``proto`` (subgraphs included)."""
    kind, k, v = op
    graphs = _graphs(proto.graph)
    g = graphs[v % len(graphs)] if kind in ("attr", "edge", "rename", "drop_node") else proto.graph
    nodes = [n for gr in graphs for n in gr.node] if kind == "attr" else list(g.node)
    inits = [t for gr in graphs for t in gr.initializer]
    if kind == "attr" and nodes:
        _edit_attr(nodes[k % len(nodes)], v)
    elif kind == "edge" and g.node:
        node = g.node[k % len(g.node)]
        if node.input:
            names = ["", "missing", *(o for n in g.node for o in n.output)]
            node.input[v % len(node.input)] = names[(k + v) % len(names)]
    elif kind == "rename" and g.node:  # an output renamed: its consumers lose their input
        node = g.node[k % len(g.node)]
        if node.output:
            node.output[v % len(node.output)] = ("", "renamed", "x")[v % 3]
    elif kind == "drop_node" and g.node:
        del g.node[k % len(g.node)]
    elif kind == "dims" and inits:
        t = inits[k % len(inits)]
        dims = list(t.dims)
        choice = [[], [0], [*dims, 1], dims[:-1], [2**40], [-3, *dims[1:]], dims[::-1]][v % 7]
        del t.dims[:]
        t.dims.extend(choice)
    elif kind == "dtype" and inits:
        inits[k % len(inits)].data_type = (0, 2, 6, 7, 9, 10, 11, 16, 999)[v % 9]
    elif kind == "raw" and inits:
        t = inits[k % len(inits)]
        t.raw_data = (b"", t.raw_data[:-1], t.raw_data + b"\0" * 4, b"\x00\x00\xc0\x7f")[v % 4]
    elif kind == "shape" and g.input:
        dims = g.input[k % len(g.input)].type.tensor_type.shape.dim
        if dims:
            d = dims[v % len(dims)]
            (d.dim_value, d.dim_param) = ((0, ""), (2**62, ""), (0, "N"), (1, ""))[v % 4]
    elif kind == "opset":
        proto.opset_import[0].version = (1, 7, 13, 99)[v % 4]


_KINDS = ("attr", "edge", "rename", "drop_node", "dims", "dtype", "raw", "shape", "opset")
edit_case = st.tuples(
    st.sampled_from(sorted(seeds())),
    st.lists(
        st.tuples(st.sampled_from(_KINDS), st.integers(0, 200), st.integers(0, 200)),
        min_size=1,
        max_size=3,
    ),
)


def _edited(case: tuple[str, list[tuple]]) -> bytes:
    import onnx

    name, ops = case
    proto = onnx.ModelProto()
    proto.ParseFromString(seeds()[name])
    for op in ops:
        _mutate(proto, op)
    return proto.SerializeToString()


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="edgelstm-fuzz-intake-"))


def _refused_cleanly(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except EdgeLSTMError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} with an empty message"
        return None


def check_intake_edits(case: tuple[str, list[tuple]]) -> None:
    """find_lstms, then from_onnx with each listed node and the whole graph."""
    import onnx

    from edgelstm.importers.onnx_intake import find_lstms
    from edgelstm.importers.onnx_lstm import from_onnx

    data = _edited(case)
    proto = onnx.ModelProto()
    proto.ParseFromString(data)
    sites = _refused_cleanly(find_lstms, proto) or []
    for site in sites:
        assert site.error is None or isinstance(site.error, EdgeLSTMError), site.error
        str(site.where), site.features()
        _refused_cleanly(from_onnx, data, lstm=site.where)
    _refused_cleanly(from_onnx, data, lstm=[s.where for s in sites[:2]] or "lstm")
    _refused_cleanly(from_onnx, data)


def check_intake_inspect(case: tuple[str, list[tuple]]) -> None:
    """inspect_model + its text and JSON on the mutated graph."""
    from edgelstm.inspect import format_info, inspect_model

    path = _scratch() / "m.onnx"
    path.write_bytes(_edited(case))
    info = _refused_cleanly(inspect_model, path)
    if info is not None:
        format_info(info)
        json.dumps(info.to_dict(), default=str)


PROPERTIES: list[Property] = [
    Property("onnx_intake_edits", edit_case, check_intake_edits, 150),
    Property("onnx_intake_inspect", edit_case, check_intake_inspect, 80),
]
"""Every fuzz property of this module (tools/fuzz_long.py runs the same list)."""


def test_seeds_import_cleanly() -> None:
    """Unmutated, every seed's LSTMs resolve and import (else the fuzzing is blind)."""
    import onnx

    from edgelstm.importers.onnx_intake import find_lstms
    from edgelstm.importers.onnx_lstm import from_onnx

    ort = pytest.importorskip("onnxruntime")
    feeds = {
        "zero_states": {"x": np.ones((5, 2, I), np.float32)},
        "state_inputs": {"x": np.ones((5, 1, I), np.float32)}
        | {k: np.zeros((2, 1, H), np.float32) for k in "hc"},
        "if": {"x": np.ones((5, 2, I), np.float32), "cond": np.array(True)},
    }
    counts = {}
    for name, data in seeds().items():  # valid graphs: onnxruntime runs them
        ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds[name])
        sites = find_lstms(onnx.load_from_string(data))
        assert sites and all(s.problem is None for s in sites), [s.problem for s in sites]
        for site in sites:
            from_onnx(data, lstm=site.where)
        counts[name] = len(sites)
    assert counts == {"zero_states": 2, "state_inputs": 2, "if": 2}


@pytest.mark.parametrize("prop", [as_param(p) for p in PROPERTIES])
def test_fuzz_onnx_intake(prop: Property) -> None:
    run_property(prop)


def test_cyclic_glue_is_refused_not_looped() -> None:
    """Found by this fuzzer: Transpose/Reshape glue feeding itself looped forever (and grew
    memory without bound) in Graph.source; now a ModelFileError naming the cycle."""
    from edgelstm.errors import ModelFileError
    from edgelstm.importers.onnx_lstm import from_onnx

    case = ("zero_states", [("edge", 102, 178), ("drop_node", 56, 128), ("edge", 102, 178)])
    with pytest.raises(ModelFileError, match="depends on itself"):
        from_onnx(_edited(case), lstm="l0,l1")
