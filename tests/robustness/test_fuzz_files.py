"""Hypothesis: corrupted, truncated and adversarially edited model files given to the readers.

Property: every reader of an untrusted file (``from_npz``, ``from_onnx``, ``from_tflite``,
``inspect_model`` + its text/JSON output, ``edgelstm compile``) either loads the file or raises
an :class:`EdgeLSTMError`; never another exception. Stronger where the format allows it:
an .npz is CRC-checked, so a byte-corrupted one loads only if the weights are unchanged, and
a truncated file of any format loads only if nothing that matters was cut.

Mutations are byte level (bit flips, bytes, int32 overwrites, cuts, insertions, and edits of
the format's own length fields: zip sizes, protobuf length varints, flatbuffer vector
lengths) and structural (arrays / protos / flatbuffer objects edited, then re-serialized
with valid checksums, as an attacker would). The same properties run longer in
``tools/fuzz_long.py``: :data:`PROPERTIES` is the shared list.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import struct
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _fuzz import Property, as_param, run_property
from hypothesis import strategies as st

from edgelstm import DenseHead, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights
from edgelstm.errors import EdgeLSTMError
from edgelstm.importers.npz import from_npz, to_npz_arrays
from edgelstm.ir.options import CompileOptions

# -- seed files --------------------------------------------------------------------------


def _models() -> dict[str, LSTMModel]:
    w = LSTMWeights.random
    a = LSTMSpec(3, 4, 2, peephole=True, projection=True, cell_clip=3.0, proj_clip=2.0)
    b = LSTMSpec(3, 4, cifg=True, layer_norm=True, activation="relu6")
    c = LSTMSpec(8, 3)
    rng = np.random.default_rng(0)
    return {
        "single": LSTMModel.of(w(a, 1)),
        "model": LSTMModel(
            (LSTMLayer(w(b, 2), w(b, 3)), LSTMLayer(w(c, 4))),
            head=DenseHead(rng.normal(size=(2, 3)), rng.normal(size=2), "softmax"),
            return_sequences=False,
            return_state=True,
            provenance={"forget_bias": 1.0, "source": "fuzz"},
        ),
    }


@functools.cache
def seed_files() -> dict[str, bytes]:
    """Small valid files of every format the readers take (built once per process)."""
    from edgelstm.targets.onnx import to_onnx
    from edgelstm.targets.tflite import to_tflite

    files = {}
    for name, model in _models().items():
        buf = io.BytesIO()
        np.savez(buf, **to_npz_arrays(model))
        files[f"{name}.npz"] = buf.getvalue()
        files[f"{name}.onnx"] = to_onnx(model, CompileOptions(batch=None)).SerializeToString()
        files[f"{name}.tflite"] = to_tflite(model, CompileOptions(batch=None))
    dyn = CompileOptions(quantize="dynamic")
    files["dynamic.onnx"] = to_onnx(_models()["single"], dyn).SerializeToString()
    files["dynamic.tflite"] = to_tflite(_models()["single"], dyn)
    # edgelstm's own ONNX output is a composite/Gather graph the importer refuses early;
    # plain LSTM-node graphs (what other tools write) exercise the whole importer.
    files["lstm.onnx"] = onnx_lstm_graph("forward", peephole=True, outputs=("Y", "Y_h", "Y_c"))
    files["bidi.onnx"] = onnx_lstm_graph("bidirectional", peephole=False, outputs=("Y",))
    return files


def onnx_lstm_graph(direction: str, *, peephole: bool, outputs: tuple[str, ...]) -> bytes:
    """One ONNX ``LSTM`` node with constant weights (a graph from_onnx imports)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    n_dir, n_in, hidden = (2 if direction == "bidirectional" else 1), 3, 4
    shapes = {"W": (n_dir, 4 * hidden, n_in), "R": (n_dir, 4 * hidden, hidden)}
    shapes["B"] = (n_dir, 8 * hidden)
    inputs = ["X", "W", "R", "B"]
    if peephole:
        shapes["P"] = (n_dir, 3 * hidden)
        inputs += ["", "", "", "P"]
    inits = [
        numpy_helper.from_array(rng.uniform(-0.6, 0.6, shape).astype(np.float32), name)
        for name, shape in shapes.items()
    ]
    node = helper.make_node(
        "LSTM", inputs, list(outputs), name="lstm", hidden_size=hidden, direction=direction
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 2, n_in])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model.SerializeToString()


def seed_names(suffix: str) -> list[str]:
    names = ("single", "model", "dynamic", "lstm", "bidi")
    return sorted(n for n in names if f"{n}{suffix}" in seed_files())


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="edgelstm-fuzz-"))


def write_scratch(data: bytes, suffix: str) -> Path:
    path = _scratch() / f"case{suffix}"
    path.write_bytes(data)
    return path


# -- file layouts: section boundaries and length fields ------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where a file's sections start/end and where its length fields sit."""

    bounds: tuple[int, ...]
    lengths: tuple[tuple[int, int, str], ...]
    """(position, size in bytes, "le" little-endian int | "varint")."""


def _zip_layout(data: bytes) -> Layout:
    bounds, lengths = {0, len(data)}, []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
    for zi in infos:
        h = zi.header_offset
        n, e = struct.unpack_from("<HH", data, h + 26)
        start = h + 30 + n + e
        bounds |= {h, h + 30, start, start + zi.compress_size}
        lengths += [(h + 18, 4, "le"), (h + 22, 4, "le"), (h + 26, 2, "le"), (h + 28, 2, "le")]
        if data[start : start + 6] == b"\x93NUMPY":  # np.savez stores members uncompressed
            (hlen,) = struct.unpack_from("<H", data, start + 8)
            lengths.append((start + 8, 2, "le"))
            bounds |= {start + 10, start + 10 + hlen}
    eocd = data.rfind(b"PK\x05\x06")
    (p,) = struct.unpack_from("<I", data, eocd + 16)
    while data[p : p + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack_from("<HHH", data, p + 28)
        bounds.add(p)
        lengths += [(p + o, s, "le") for o, s in ((20, 4), (24, 4), (28, 2), (30, 2), (42, 4))]
        p += 46 + n + e + c
    bounds.add(eocd)
    lengths += [(eocd + o, s, "le") for o, s in ((8, 2), (10, 2), (12, 4), (16, 4))]
    return Layout(tuple(sorted(bounds)), tuple(lengths))


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _pb_walk(data: bytes, base: int, depth: int, bounds: set, lengths: list) -> None:
    """Record field starts and length-delimited payloads; descend into ones that parse."""
    pos = 0
    while pos < len(data):
        bounds.add(base + pos)
        key, pos = _varint(data, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, start = _varint(data, pos)
            lengths.append((base + pos, start - pos, "varint"))
            bounds |= {base + start, base + start + size}
            if depth < 4:
                sub_b: set = set()
                sub_l: list = []
                try:
                    _pb_walk(data[start : start + size], base + start, depth + 1, sub_b, sub_l)
                except ValueError:
                    pass  # bytes, not a message
                else:
                    bounds |= sub_b
                    lengths += sub_l
            pos = start + size
        else:
            raise ValueError("bad wire type")
        if pos > len(data):
            raise ValueError("field overruns")


def _pb_layout(data: bytes) -> Layout:
    bounds: set = {0, len(data)}
    lengths: list = []
    _pb_walk(data, 0, 0, bounds, lengths)
    return Layout(tuple(sorted(bounds)), tuple(lengths))


def _fb_layout(data: bytes) -> Layout:
    """Tables, vectors and strings of a .tflite flatbuffer (uint32 length prefixes)."""
    from edgelstm.targets.tflite.schema import schema

    bounds: set = {0, 4, 8, len(data)}
    lengths: list = []

    def table(t: Any) -> Any:
        if t is not None:
            bounds.add(t._tab.Pos)
        return t

    def vector(t: Any, slot: int, elem: int) -> None:
        o = t._tab.Offset(4 + 2 * slot)
        if o:
            start, n = t._tab.Vector(o), t._tab.VectorLen(o)
            bounds.update((start - 4, start, start + n * elem))
            lengths.append((start - 4, 4, "le"))

    m = table(schema.Model.GetRootAs(data, 0))
    for slot, elem in ((1, 4), (2, 4), (3, 1), (4, 4), (5, 4), (6, 4), (7, 4)):
        vector(m, slot, elem)
    for i in range(m.BuffersLength()):
        vector(table(m.Buffers(i)), 0, 1)
    for i in range(m.MetadataLength()):
        vector(table(m.Metadata(i)), 0, 1)
    for i in range(m.OperatorCodesLength()):
        table(m.OperatorCodes(i))
    for s in range(m.SubgraphsLength()):
        sg = table(m.Subgraphs(s))
        for slot in range(5):
            vector(sg, slot, 1 if slot == 4 else 4)
        for i in range(sg.TensorsLength()):
            t = table(sg.Tensors(i))
            for slot, elem in ((0, 4), (3, 1), (7, 4)):
                vector(t, slot, elem)
            q = table(t.Quantization())
            if q is not None:
                for slot, elem in ((0, 4), (1, 4), (2, 4), (3, 8)):
                    vector(q, slot, elem)
        for i in range(sg.OperatorsLength()):
            op = table(sg.Operators(i))
            for slot in (1, 2, 8):
                vector(op, slot, 4)
    return Layout(tuple(sorted(b for b in bounds if 0 <= b <= len(data))), tuple(lengths))


@functools.cache
def layout(name: str) -> Layout:
    data = seed_files()[name]
    suffix = Path(name).suffix
    return {".npz": _zip_layout, ".onnx": _pb_layout, ".tflite": _fb_layout}[suffix](data)


# -- byte-level mutations --------------------------------------------------------------------

EXTREME_INT32 = (0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000)

_pos = st.integers(0, 2**32 - 1)  # taken modulo the current length
byte_mutation = st.one_of(
    st.tuples(st.just("flip"), _pos, st.integers(0, 7)),
    st.tuples(st.just("byte"), _pos, st.integers(0, 255)),
    st.tuples(st.just("int32"), _pos, st.sampled_from(EXTREME_INT32)),
    st.tuples(st.just("cut"), _pos, st.integers(1, 64)),
    st.tuples(st.just("insert"), _pos, st.binary(min_size=1, max_size=16)),
    st.tuples(
        st.just("length"), st.integers(0, 2**16), st.sampled_from(("0", "-1", "+1", "x2", "max"))
    ),
)


def _new_length(old: int, how: str, size: int) -> int:
    top = (1 << (8 * size)) - 1 if size < 8 else 2**31 - 1
    value = {"0": 0, "-1": old - 1, "+1": old + 1, "x2": old * 2 + 1, "max": top}[how]
    return max(0, min(value, top))


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def apply_mutations(data: bytes, ops: list[tuple], lay: Layout) -> bytes:
    """Apply byte-level ``ops`` in order (positions taken modulo the current length)."""
    b = bytearray(data)
    for op in ops:
        if not b:
            break
        kind = op[0]
        if kind == "length":
            if not lay.lengths:
                continue
            pos, size, enc = lay.lengths[op[1] % len(lay.lengths)]
            if enc == "le":
                if pos + size > len(b):
                    continue
                old = int.from_bytes(b[pos : pos + size], "little")
                b[pos : pos + size] = _new_length(old, op[2], size).to_bytes(size, "little")
            else:
                try:
                    old, end = _varint(bytes(b), pos)
                except ValueError:
                    continue
                b[pos:end] = _encode_varint(_new_length(old, op[2], 8))
            continue
        pos = op[1] % len(b)
        if kind == "flip":
            b[pos] ^= 1 << op[2]
        elif kind == "byte":
            b[pos] = op[2]
        elif kind == "int32":
            b[pos : pos + 4] = op[2].to_bytes(4, "little")
        elif kind == "cut":
            del b[pos : pos + op[2]]
        elif kind == "insert":
            b[pos:pos] = op[2]
    return bytes(b)


# -- the readers ---------------------------------------------------------------------------


def read_npz(path: Path) -> Any:
    return from_npz(path)


def read_onnx(path: Path) -> Any:
    from edgelstm.importers.onnx_lstm import from_onnx

    return from_onnx(path)


def read_tflite(path: Path) -> Any:
    from edgelstm.targets.tflite import from_tflite

    return from_tflite(path)


def read_inspect(path: Path) -> Any:
    """What ``edgelstm inspect [--json]`` computes: the info, its text and its JSON."""
    from edgelstm.inspect import format_info, inspect_model

    info = inspect_model(path)
    format_info(info)
    json.dumps(info.to_dict(), default=str)
    return info


def loads_or_refuses(reader: Callable[[Path], Any], data: bytes, suffix: str) -> Any | None:
    """The reader's result, or None when it refused with an EdgeLSTMError (anything else
    propagates and fails the property)."""
    path = write_scratch(data, suffix)
    try:
        return reader(path)
    except EdgeLSTMError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} with an empty message"
        return None


def digests(model: LSTMModel) -> list[Any]:
    out: list[Any] = [
        (w.digest(), layer.go_backwards) for layer in model.layers for w in layer.directions
    ]
    if model.head is not None:
        out.append((model.head.kernel.tobytes(), model.head.bias.tobytes(), model.head.activation))
    return out


# -- properties ----------------------------------------------------------------------------


def byte_case(suffix: str) -> st.SearchStrategy:
    return st.tuples(
        st.sampled_from(seed_names(suffix)), st.lists(byte_mutation, min_size=1, max_size=4)
    )


def check_npz_bytes(case: tuple[str, list[tuple]]) -> None:
    """A byte-corrupted .npz is refused, or loads the very same model (zip CRCs)."""
    name, ops = case
    original = seed_files()[f"{name}.npz"]
    data = apply_mutations(original, ops, layout(f"{name}.npz"))
    model = loads_or_refuses(read_npz, data, ".npz")
    if model is not None:
        assert digests(model) == digests(_models()[name]), f"silently different model: {ops}"


def _check_bytes(reader: Callable[[Path], Any], suffix: str, case: tuple[str, list]) -> None:
    name, ops = case
    data = apply_mutations(seed_files()[f"{name}{suffix}"], ops, layout(f"{name}{suffix}"))
    loads_or_refuses(reader, data, suffix)


def check_onnx_bytes(case: tuple[str, list[tuple]]) -> None:
    _check_bytes(read_onnx, ".onnx", case)


def check_tflite_bytes(case: tuple[str, list[tuple]]) -> None:
    _check_bytes(read_tflite, ".tflite", case)


def check_inspect_onnx_bytes(case: tuple[str, list[tuple]]) -> None:
    _check_bytes(read_inspect, ".onnx", case)


def check_inspect_tflite_bytes(case: tuple[str, list[tuple]]) -> None:
    _check_bytes(read_inspect, ".tflite", case)


# structural .npz edits (valid zip, valid CRCs: the arrays themselves are hostile)

WEIRD_VALUES: tuple[Any, ...] = (
    np.nan,
    np.inf,
    -1.0,
    0,
    1e39,
    "abc",
    b"abc",
    True,
    np.zeros((2, 2)),
    np.zeros(0),
    "{",
    '{"a": [}',
    "[" * 3000 + "]" * 3000,
    "[1, 2]",
    np.array([1 + 2j]),
    np.array(["x", "y"]),
)
NPZ_KEYS = (
    "input_to_forget_weights",
    "recurrent_to_cell_weights",
    "forget_gate_bias",
    "cell_clip",
    "proj_clip",
    "activation",
    "layer0.input_to_forget_weights",
    "layer0.backward.cell_gate_bias",
    "layer1.recurrent_to_output_weights",
    "layer0.go_backwards",
    "head.kernel",
    "head.bias",
    "head.activation",
    "return_sequences",
    "provenance",
    "layer7.forget_gate_bias",
    "layer0.cell_to_input_weights",
    "surprise",
)
npz_edit = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 100)),
    st.tuples(st.just("set"), st.sampled_from(NPZ_KEYS), st.sampled_from(range(len(WEIRD_VALUES)))),
    st.tuples(
        st.just("dtype"),
        st.integers(0, 100),
        st.sampled_from(("i1", "f8", "f2", "?", "c8", "U3", "S3", "V4", "M8[s]", "O")),
    ),
    st.tuples(
        st.just("shape"),
        st.integers(0, 100),
        st.sampled_from(("T", "add", "flat", "empty", "scalar", "grow")),
    ),
    st.tuples(
        st.just("poison"), st.integers(0, 100), st.sampled_from((np.nan, np.inf, -np.inf, 3e38))
    ),
)


def _reshape(arr: np.ndarray, how: str) -> np.ndarray:
    if how == "T":
        return arr.T
    if how == "add":
        return arr[None]
    if how == "flat":
        return arr.reshape(-1)
    if how == "empty":
        return np.zeros((0, *arr.shape[1:]), arr.dtype)
    if how == "scalar":
        return arr.reshape(-1)[:1].reshape(()) if arr.size else np.zeros(())
    return np.concatenate([arr.reshape(-1), arr.reshape(-1)])


def _npz_edit(arrays: dict[str, np.ndarray], op: tuple) -> None:
    keys = sorted(arrays)
    if op[0] == "set":
        arrays[op[1]] = np.asarray(WEIRD_VALUES[op[2]])
        return
    if not keys:
        return
    key = keys[op[1] % len(keys)]
    if op[0] == "drop":
        del arrays[key]
    elif op[0] == "dtype":
        try:
            with np.errstate(all="ignore"):
                arrays[key] = arrays[key].astype(op[2])
        except Exception:  # noqa: BLE001 - numpy's casts fail in many ways; any dtype will do
            arrays[key] = np.zeros(arrays[key].shape, op[2] if op[2] != "O" else object)
    elif op[0] == "shape":
        arrays[key] = _reshape(arrays[key], op[2])
    elif arrays[key].dtype.kind == "f" and arrays[key].size:
        arr = arrays[key].copy()
        arr.reshape(-1)[0] = op[2]
        arrays[key] = arr


def check_npz_edits(case: tuple[str, list[tuple]]) -> None:
    """Structurally edited .npz (hostile keys, dtypes, shapes, values, pickles): loads a
    valid model or is refused; an object array is never unpickled."""
    name, ops = case
    arrays = to_npz_arrays(_models()[name])
    for op in ops:
        _npz_edit(arrays, op)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # allow_pickle=True here: object arrays become pickles
    path = write_scratch(buf.getvalue(), ".npz")
    try:
        model = from_npz(path)
    except EdgeLSTMError as exc:
        if any(a.dtype == object for a in arrays.values()):
            assert "pickle" in str(exc), exc
        return
    assert isinstance(model, LSTMModel)


npz_edit_case = st.tuples(
    st.sampled_from(["single", "model"]), st.lists(npz_edit, min_size=1, max_size=4)
)


# structural .onnx edits


def _onnx_edit(proto: Any, op: tuple) -> None:
    from onnx import AttributeProto, helper

    g = proto.graph
    kind, k, v = op
    if kind == "dims" and g.initializer:
        t = g.initializer[k % len(g.initializer)]
        dims = list(t.dims)
        choice = [[], [0], [*dims, 1], dims[:-1], [2**40], [-3, *dims[1:]], dims[::-1]][v % 7]
        del t.dims[:]
        t.dims.extend(choice)
    elif kind == "dtype" and g.initializer:
        g.initializer[k % len(g.initializer)].data_type = (0, 2, 7, 10, 11, 33, 999)[v % 7]
    elif kind == "raw" and g.initializer:
        t = g.initializer[k % len(g.initializer)]
        t.raw_data = (b"", t.raw_data[:-1], t.raw_data + b"\0", b"\xff" * 4)[v % 4]
    elif kind == "drop_init" and g.initializer:
        del g.initializer[k % len(g.initializer)]
    elif kind == "attr" and g.node:
        node = g.node[k % len(g.node)]
        name = ("hidden_size", "direction", "activations", "clip", "layout", "input_forget")[v % 6]
        value = (-5, 0, 2**40, "sideways", ["Tanh"], 1e-30, float("nan"), 7, b"\xff\xfe")[v % 9]
        for a in list(node.attribute):
            if a.name == name:
                node.attribute.remove(a)
        try:
            node.attribute.append(helper.make_attribute(name, value))
        except (TypeError, ValueError):
            node.attribute.append(AttributeProto(name=name, type=AttributeProto.INT, i=-1))
    elif kind == "input" and g.node:
        node = g.node[k % len(g.node)]
        if node.input:
            node.input[v % len(node.input)] = (
                "",
                "missing",
                node.output[0] if node.output else "x",
            )[v % 3]
    elif kind == "op" and g.node:
        g.node[k % len(g.node)].op_type = ("LSTM", "GRU", "Identity", "Loop", "")[v % 5]
    elif kind == "output" and g.output:
        del g.output[k % len(g.output)]
    elif kind == "opset":
        del proto.opset_import[:]
        proto.opset_import.extend([helper.make_opsetid("", (1, 7, 14, 17, 99)[v % 5])])
    elif kind == "meta" and proto.metadata_props:
        prop = proto.metadata_props[k % len(proto.metadata_props)]
        prop.value = ("", "{", "[" * 5000, '{"a": 1}', "\x00")[v % 5]
    elif kind == "shape" and g.input:
        dims = g.input[0].type.tensor_type.shape.dim
        if dims:
            d = dims[k % len(dims)]
            if v % 3 == 0:
                d.dim_value = 0
            elif v % 3 == 1:
                d.dim_param = ""
            else:
                d.dim_value = 2**62


onnx_edit = st.tuples(
    st.sampled_from(
        (
            "dims",
            "dtype",
            "raw",
            "drop_init",
            "attr",
            "input",
            "op",
            "output",
            "opset",
            "meta",
            "shape",
        )
    ),
    st.integers(0, 200),
    st.integers(0, 200),
)
onnx_edit_case = st.tuples(
    st.sampled_from(["lstm", "lstm", "bidi", "bidi", "model", "dynamic"]),
    st.lists(onnx_edit, min_size=1, max_size=3),
)


def _edited_onnx(case: tuple[str, list[tuple]]) -> bytes:
    import onnx

    name, ops = case
    proto = onnx.ModelProto()
    proto.ParseFromString(seed_files()[f"{name}.onnx"])
    for op in ops:
        _onnx_edit(proto, op)
    return proto.SerializeToString()


def check_onnx_edits(case: tuple[str, list[tuple]]) -> None:
    loads_or_refuses(read_onnx, _edited_onnx(case), ".onnx")


def check_inspect_onnx_edits(case: tuple[str, list[tuple]]) -> None:
    loads_or_refuses(read_inspect, _edited_onnx(case), ".onnx")


# structural .tflite edits (flatbuffer object API, re-packed)


def _tflite_edit(m: Any, op: tuple) -> None:
    from edgelstm.targets.tflite.schema import schema

    if not m.subgraphs:  # an earlier "subgraphs" edit removed them all: nothing left to edit
        return
    g = m.subgraphs[0]
    kind, k, v = op
    tensors, ops_ = g.tensors, g.operators
    if kind == "shape":
        t = tensors[k % len(tensors)]
        t.shape = ([], [0], [1, 2, 3, 4, 5], [2**31 - 1, 4], [-1, 3], [7])[v % 6]
    elif kind == "op_input":
        o = ops_[k % len(ops_)]
        ins = list(o.inputs)
        ins[v % len(ins)] = (-1, len(tensors), 2**31 - 1, -7, (v * 7) % len(tensors))[v % 5]
        o.inputs = ins
    elif kind == "op_output":
        o = ops_[k % len(ops_)]
        o.outputs = [(-1, len(tensors), (v * 3) % len(tensors))[v % 3]]
    elif kind == "buffer":
        tensors[k % len(tensors)].buffer = (len(m.buffers), 2**31 - 1, 0, v % len(m.buffers))[v % 4]
    elif kind == "type":
        tensors[k % len(tensors)].type = (0, 2, 7, 9, 10, 17, 99)[v % 7]
    elif kind == "quant":
        t = tensors[k % len(tensors)]
        q = schema.QuantizationParametersT()
        q.scale = [(0.0, 1e-30, float("nan"), 1.0, -1.0)[v % 5]] * (1 + v % 3)
        q.zeroPoint = [(0, 127, -200, 2**40)[v % 4]] * (1 + (v // 3) % 2)
        q.quantizedDimension = (0, 1, 5, -1)[v % 4]
        t.quantization = q
    elif kind == "opcode":
        c = m.operatorCodes[k % len(m.operatorCodes)]
        c.builtinCode = (0, 9, 44, 105, 2, 25, 161, 999)[v % 8]
        c.deprecatedBuiltinCode = min(c.builtinCode, 127)
    elif kind == "opcode_index":
        ops_[k % len(ops_)].opcodeIndex = (len(m.operatorCodes), 2**31 - 1, 0)[v % 3]
    elif kind == "options":
        o = ops_[k % len(ops_)]
        if isinstance(o.builtinOptions, schema.UnidirectionalSequenceLSTMOptionsT):
            field = ("cellClip", "projClip", "fusedActivationFunction", "timeMajor")[v % 4]
            value = (float("nan"), -1.0, 99, float("inf"), 1)[v % 5]
            if field in ("fusedActivationFunction", "timeMajor"):  # int8 / bool slots
                value = (99, -1, 127, 0, 1)[v % 5] if field[0] == "f" else bool(v % 2)
            setattr(o.builtinOptions, field, value)
        else:
            o.builtinOptions = None
    elif kind == "io":
        g.inputs = [(-1, len(tensors), 0, (v * 5) % len(tensors))[v % 4]]
        if v % 2:
            g.outputs = []
    elif kind == "subgraphs":
        m.subgraphs = [] if v % 2 else m.subgraphs + [copy.deepcopy(g)]
    elif kind == "metadata":
        _tflite_metadata_edit(m, v)
    elif kind == "buffer_data":
        b = m.buffers[k % len(m.buffers)]
        if b.data is not None and len(b.data):
            b.data = b.data[: len(b.data) // 2] if v % 2 else list(b.data) + [0] * 3


META_EDITS: tuple[Callable[[dict], Any], ...] = (
    lambda d: d.update(format_version=99),
    lambda d: d.update(format="other"),
    lambda d: d.update(model="abc"),
    lambda d: d["model"].update(layers="abc"),
    lambda d: d["model"].update(layers=[{"directions": "x"}]),
    lambda d: d["model"].update(layers=[{"directions": [{"prefix": 5}]}]),
    lambda d: d["model"].update(layers=[]),
    lambda d: d["model"].update(head={"activation": 3}),
    lambda d: d["model"].update(head="x"),
    lambda d: d["model"]["layers"][0]["directions"][0].update(spec="x"),
    lambda d: d["model"]["layers"][0]["directions"][0].update(spec={"cell_clip": "x"}),
    lambda d: d.update(provenance="x"),
    lambda d: d.update(provenance=[1, 2]),
    lambda d: d.update(options=None),
)


def _tflite_metadata_edit(m: Any, v: int) -> None:
    from edgelstm.targets.tflite.metadata import METADATA_NAME

    for entry in m.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name != METADATA_NAME:
            continue
        buf = m.buffers[entry.buffer]
        n = len(META_EDITS)
        if v % (n + 3) < n:
            try:
                meta = json.loads(bytes(np.asarray(buf.data, np.uint8)))
            except (ValueError, RecursionError):  # an earlier edit already broke the JSON
                continue
            try:
                META_EDITS[v % (n + 3)](meta)
            except (TypeError, KeyError, IndexError, AttributeError):
                continue  # an earlier edit already replaced the part this edit reaches into
            raw = json.dumps(meta).encode()
        else:
            raw = (b"\xff\xfe", b"[" * 100000, b'{"format": "edgelstm-tflite"')[v % (n + 3) - n]
        buf.data = list(raw)


tflite_edit = st.tuples(
    st.sampled_from(
        (
            "shape",
            "op_input",
            "op_output",
            "buffer",
            "type",
            "quant",
            "opcode",
            "opcode_index",
            "options",
            "io",
            "subgraphs",
            "metadata",
            "buffer_data",
        )
    ),
    st.integers(0, 500),
    st.integers(0, 500),
)
tflite_edit_case = st.tuples(
    st.sampled_from(["single", "model", "dynamic"]), st.lists(tflite_edit, min_size=1, max_size=3)
)


def _edited_tflite(case: tuple[str, list[tuple]]) -> bytes:
    import flatbuffers

    from edgelstm.targets.tflite.schema import FILE_IDENTIFIER, load_model

    name, ops = case
    m = load_model(seed_files()[f"{name}.tflite"])
    for op in ops:
        _tflite_edit(m, op)
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def check_tflite_edits(case: tuple[str, list[tuple]]) -> None:
    loads_or_refuses(read_tflite, _edited_tflite(case), ".tflite")


def check_inspect_tflite_edits(case: tuple[str, list[tuple]]) -> None:
    loads_or_refuses(read_inspect, _edited_tflite(case), ".tflite")


# through the CLI: exit 0 with a valid output, or exit 2, one line, nothing written


def check_cli_compile(case: tuple[str, list[tuple], str]) -> None:
    from contextlib import redirect_stderr, redirect_stdout

    from edgelstm.cli.main import main

    name, ops, out_suffix = case
    suffix = Path(name).suffix
    data = apply_mutations(seed_files()[name], ops, layout(name))
    src = write_scratch(data, suffix)
    out = _scratch() / f"out{out_suffix}"
    out.unlink(missing_ok=True)
    err, so = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(so):
        rc = main(["compile", str(src), "-o", str(out)])
    leftovers = [p.name for p in _scratch().iterdir() if p.name.endswith(".part")]
    assert not leftovers, leftovers
    if rc == 0:
        assert out.stat().st_size > 0
        return
    assert rc == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgelstm compile: error: "), lines
    assert not out.exists()


def cli_case(suffixes: tuple[str, ...]) -> st.SearchStrategy:
    names = sorted(n for n in seed_files() if n.endswith(suffixes))
    return st.tuples(
        st.sampled_from(names),
        st.lists(byte_mutation, min_size=1, max_size=3),
        st.sampled_from([".onnx", ".tflite"]),
    )


PROPERTIES: list[Property] = [
    Property("npz_bytes", byte_case(".npz"), check_npz_bytes, 250),
    Property("npz_edits", npz_edit_case, check_npz_edits, 200),
    Property("onnx_bytes", byte_case(".onnx"), check_onnx_bytes, 250),
    Property("onnx_edits", onnx_edit_case, check_onnx_edits, 200),
    Property("tflite_bytes", byte_case(".tflite"), check_tflite_bytes, 200),
    Property("tflite_edits", tflite_edit_case, check_tflite_edits, 200),
    Property("inspect_onnx_bytes", byte_case(".onnx"), check_inspect_onnx_bytes, 150),
    Property("inspect_onnx_edits", onnx_edit_case, check_inspect_onnx_edits, 150),
    Property("inspect_tflite_bytes", byte_case(".tflite"), check_inspect_tflite_bytes, 150),
    Property("inspect_tflite_edits", tflite_edit_case, check_inspect_tflite_edits, 150),
    Property("cli_compile", cli_case((".npz", ".onnx")), check_cli_compile, 100),
]
"""Every fuzz property of this module (tools/fuzz_long.py runs the same list)."""


@pytest.mark.parametrize("prop", [as_param(p) for p in PROPERTIES])
def test_fuzz_file_readers(prop: Property) -> None:
    run_property(prop)


def test_layouts_find_the_structure() -> None:
    """The section/length-field walkers see real structure (else the fuzzing is blind)."""
    for name in seed_files():
        lay = layout(name)
        assert len(lay.bounds) > 20 and len(lay.lengths) > 10, (name, lay)
        assert all(0 <= p < len(seed_files()[name]) for p, _, _ in lay.lengths)


def test_ci_examples_total_at_least_1000() -> None:
    """Passing properties alone (a known-bug one stops at its first counterexample)."""
    from test_fuzz_compile import PROPERTIES as COMPILE_PROPERTIES

    total = sum(p.ci_examples for p in PROPERTIES + COMPILE_PROPERTIES if not p.known_bug)
    assert total >= 1000, total
