"""The TFLite linker: .tflite models joined into one flatbuffer, without TensorFlow.

Whole models are converted in segments (TensorFlow's converter for the layers around the
LSTMs, :func:`edgelstm.targets.tflite.to_tflite` for each LSTM run) and joined here.
:func:`link_chain` joins parts in series (part k's output feeds part k+1's input);
:func:`link_graph` takes any wiring of part outputs to part inputs (a front end giving
both features and sequence lengths to later parts, several LSTM branches). Both remap
tensors, buffers, operator codes and extra subgraphs (:mod:`.link_merge`).

At a boundary nothing is approximated silently (:mod:`.link_boundary`): equal dtype and
quantization connect directly (the consumer reads the producer's tensor; one fixed and one
dynamic dimension keep the fixed one); different int8/uint8/int16 quantization gets an
explicit requantizing QUANTIZE op, float into an integer part a QUANTIZE, an integer part
into float a DEQUANTIZE. Anything else (another dtype pair, incompatible shapes,
per-channel activations) raises :class:`UnsupportedError` naming both sides.

Variable tensors (edgelstm's LSTM states and their in-graph reset) keep ``is_variable`` and
their buffers. The result has one ``serving_default`` signature. Tensor names stay unique: a
part whose names collide with an earlier part's gets ``seg{k}/`` before all of them.
Metadata: each part's entries are kept (an ``edgelstm`` entry stays ``edgelstm`` when one
part has it; names two parts share become ``NAME.seg{k}``), TensorFlow's
``min_runtime_version`` is dropped (it holds for one segment, not the whole file, and is
not recomputed), the caller's ``metadata`` is added (its names win), and
``edgelstm.segments`` (JSON, :data:`SEGMENTS_FORMAT`; :func:`read_segments`) records where
each part and boundary went.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgelstm.errors import SpecError, UnsupportedError
from edgelstm.targets.tflite import link_boundary as boundary
from edgelstm.targets.tflite.link_merge import (
    Merger,
    check_model,
    check_var_handles,
    normalize,
    referenced,
    text,
)
from edgelstm.targets.tflite.metadata import METADATA_NAME, SEGMENTS_NAME, read_segments
from edgelstm.targets.tflite.schema import BuiltinOperator, decode_model, schema

__all__ = ["SEGMENTS_FORMAT", "SEGMENTS_NAME", "link_chain", "link_graph", "read_segments"]

SEGMENTS_FORMAT = "edgelstm-link"
DROPPED_METADATA = frozenset({"min_runtime_version"})

Port = tuple[int, int]
"""(part index, position among that part's main-subgraph inputs or outputs)."""


@dataclass
class _Part:
    index: int
    model: schema.ModelT
    main: schema.SubGraphT
    where: str

    @property
    def kind(self) -> str:
        names = {text(m.name) for m in self.model.metadata or []}
        return "edgelstm" if METADATA_NAME in names else "tflite"


def _load(parts: Sequence[bytes], caller: str) -> list[_Part]:
    if not parts:
        raise SpecError(f"{caller}: no parts to link")
    loaded = []
    for k, data in enumerate(parts):
        where = f"segment {k}"
        model = normalize(decode_model(data, f"link: {where}"))
        if not model.subgraphs:
            raise UnsupportedError("tflite", f"{where}: the model has no subgraph")
        check_model(model, where)
        loaded.append(_Part(k, model, model.subgraphs[0], where))
    return loaded


def _signature_names(part: _Part, tensors: Sequence[int]) -> list[str]:
    """The names a part's signature gives ``tensors`` (its tensor names otherwise)."""
    names: dict[int, str] = {}
    for sig in part.model.signatureDefs or []:
        if int(sig.subgraphIndex or 0) == 0:
            for m in list(sig.inputs or []) + list(sig.outputs or []):
                names.setdefault(int(m.tensorIndex), text(m.name))
    return [names.get(int(i)) or text(part.main.tensors[int(i)].name) for i in tensors]


class _Linker:
    """Appends the parts in order into one main subgraph, wiring each input as told."""

    def __init__(self, parts: list[_Part], edges: Mapping[Port, Port]) -> None:
        self.parts = parts
        self.edges = edges
        self.m = Merger()
        self.names: set[str] = set()
        self.tmaps: list[dict[int, int]] = []
        self.segments: list[dict[str, Any]] = []
        self.boundaries: list[dict[str, Any]] = []
        self.expected_unreferenced: set[int] = set()

    def tensor_of(self, port: Port, side: str) -> int:
        """The result's tensor of a part's input or output."""
        part = self.parts[port[0]]
        local = (part.main.inputs if side == "input" else part.main.outputs)[port[1]]
        return self.tmaps[port[0]][local]

    def run(self) -> None:
        check_var_handles([p.model for p in self.parts])
        main = self.m.main
        for part in self.parts:
            pmap = self.m.add_part(part.model, part.where, f"seg{part.index}/")
            t0 = len(main.tensors)
            fed = [
                self._boundary(part, j, local)
                for j, local in enumerate(part.main.inputs)
                if (part.index, j) in self.edges
            ]
            given = {local: src for local, src, convert, _ in fed if convert is None}
            prefix = self._prefix(part, set(given))
            tmap = dict(given)
            for i, t in enumerate(part.main.tensors):
                if i not in tmap:
                    tmap[i] = len(main.tensors)
                    main.tensors.append(self.m.tensor(t, pmap, part.where, prefix))
            for local, src, convert, record in fed:
                if convert is not None:  # the part's own input tensor stays, written by the op
                    op = convert[0]
                    opcode = self.m.opcode(*convert)
                    main.operators.append(boundary.convert_operator(op, opcode, src, tmap[local]))
                    name = "QUANTIZE" if op == BuiltinOperator.QUANTIZE else "DEQUANTIZE"
                    record.update(link=name, tensor=tmap[local], op=len(main.operators) - 1)
            o0 = len(main.operators)
            unused = set(range(len(part.main.tensors))) - referenced(part.main)
            self.expected_unreferenced |= {tmap[i] for i in unused}
            for op in part.main.operators:
                main.operators.append(self.m.operator(op, pmap, part.where, tmap))
            self.tmaps.append(tmap)
            subgraphs = sorted(pmap.subgraphs.values())
            self.segments.append(
                {
                    "index": part.index,
                    "kind": part.kind,
                    "description": text(part.model.description),
                    "op_count": len(main.operators) - o0,
                    "ops": [o0, len(main.operators)],
                    "tensors": [t0, len(main.tensors)],
                    "subgraphs": [subgraphs[0], subgraphs[-1] + 1] if subgraphs else [],
                    "name_prefix": prefix,
                }
            )

    def _prefix(self, part: _Part, skip: set[int]) -> str:
        """ "" when the part's tensor names are new, else ``seg{k}/`` for all of them."""
        names = {text(t.name) for i, t in enumerate(part.main.tensors) if i not in skip}
        prefix = "" if not names & self.names else f"seg{part.index}/"
        self.names |= {prefix + n for n in names}
        return prefix

    def _boundary(
        self, part: _Part, j: int, local: int
    ) -> tuple[int, int, tuple[int, int] | None, dict[str, Any]]:
        """How input ``j`` (local tensor ``local``) of ``part`` is fed: (local, the result's
        tensor feeding it, None to read that tensor directly or (QUANTIZE/DEQUANTIZE builtin,
        op version) for an op writing the input, the boundary record)."""
        main = self.m.main
        producer = self.edges[(part.index, j)]
        where = f"segment {producer[0]} -> segment {part.index}"
        src = self.tensor_of(producer, "output")
        out, inp = main.tensors[src], part.main.tensors[local]
        shape, sig = boundary.merge_shape(out, inp, where)
        op = boundary.boundary_op(out, inp, where)
        record: dict[str, Any] = {"producer": list(producer), "consumer": [part.index, j]}
        record.update({"from": boundary.side(out), "to": boundary.side(inp)})
        self.boundaries.append(record)
        if op is None:
            out.shape, out.shapeSignature = shape, sig
            record.update(link="direct", tensor=src, op=None)
            return local, src, None, record
        inp.shape, inp.shapeSignature = shape, sig
        return local, src, (op, boundary.op_version(op, out, inp)), record

    def check_unreferenced(self) -> None:
        dangling = set(range(len(self.m.main.tensors))) - referenced(self.m.main)
        extra = dangling - self.expected_unreferenced
        if extra:
            raise AssertionError(f"link left tensors {sorted(extra)} unreferenced")


def _metadata(
    parts: list[_Part], extra: Mapping[str, bytes] | None, segments: list[dict[str, Any]]
) -> list[tuple[str, bytes]]:
    """Each part's entries (shared names suffixed ``.seg{k}``), then the caller's."""
    extra = dict(extra or {})
    entries: list[tuple[int, str, bytes]] = []
    for part in parts:
        model = part.model
        for m in model.metadata or []:
            name = text(m.name)
            if name in DROPPED_METADATA or name == SEGMENTS_NAME:
                continue
            buf = model.buffers[int(m.buffer)] if 0 <= int(m.buffer) < len(model.buffers) else None
            data = b"" if buf is None or buf.data is None else bytes(memoryview(buf.data).cast("B"))
            entries.append((part.index, name, data))
    counts: dict[str, int] = {}
    for _, name, _ in entries:
        counts[name] = counts.get(name, 0) + 1
    out: list[tuple[str, bytes]] = []
    for k, name, data in entries:
        final = name if counts[name] == 1 and name not in extra else f"{name}.seg{k}"
        if final in extra:
            continue  # the caller's entry of that name replaces it
        segments[k].setdefault("metadata", []).append(final)
        out.append((final, data))
    out += [(name, bytes(data)) for name, data in extra.items()]
    return out


def link_chain(
    parts: Sequence[bytes],
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    metadata: Mapping[str, bytes] | None = None,
) -> bytes:
    """Join .tflite models in series into one .tflite.

    Each part's main subgraph has one input and one output (except: the first part may have
    several inputs, the last several outputs); part k's output feeds part k+1's input.
    Nothing is approximated silently: a boundary connects directly when dtype and
    quantization agree, else through an explicit QUANTIZE (requantize, float -> integer) or
    DEQUANTIZE op, else it is refused (module doc). Shapes are compared, not layouts
    (batch- vs time-major is the caller's to match);
    ``input_names`` / ``output_names`` name the signature's inputs/outputs in graph order
    (default: the first part's input and the last part's output signature names).
    """
    loaded = _load(parts, "link_chain")
    for part in loaded:
        n_in, n_out = len(part.main.inputs), len(part.main.outputs)
        k = part.index
        if (k > 0 and n_in != 1) or (k < len(loaded) - 1 and n_out != 1):
            raise UnsupportedError(
                "tflite",
                f"{part.where} has {n_in} input(s) and {n_out} output(s); in a chain only the "
                "first segment may have several inputs and only the last several outputs: "
                "convert each middle segment with one input and one output (or wire the "
                "parts with link_graph)",
            )
    first, last = loaded[0], loaded[-1]
    return _link(
        loaded,
        inputs=[(0, j) for j in range(len(first.main.inputs))],
        edges={(k, 0): (k - 1, 0) for k in range(1, len(loaded))},
        outputs=[(last.index, i) for i in range(len(last.main.outputs))],
        input_names=input_names,
        output_names=output_names,
        metadata=metadata,
    )


def link_graph(
    parts: Sequence[bytes],
    *,
    inputs: Sequence[Port],
    edges: Mapping[Port, Port],
    outputs: Sequence[Port],
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    metadata: Mapping[str, bytes] | None = None,
) -> bytes:
    """Join .tflite models wired as a graph into one .tflite.

    ``edges`` maps (consumer part, input position) to (producer part, output position);
    producers come before their consumers in ``parts``. Every part input is either fed by
    an edge or listed in ``inputs`` (the graph's inputs, in order); ``outputs`` lists the
    (part, output position) pairs that become the graph's outputs. An output may feed
    several inputs; outputs nobody reads are computed and dropped. Boundaries, names and
    metadata as for :func:`link_chain`.
    """
    loaded = _load(parts, "link_graph")
    return _link(
        loaded,
        inputs=inputs,
        edges=edges,
        outputs=outputs,
        input_names=input_names,
        output_names=output_names,
        metadata=metadata,
    )


def _link(
    loaded: list[_Part],
    *,
    inputs: Sequence[Port],
    edges: Mapping[Port, Port],
    outputs: Sequence[Port],
    input_names: Sequence[str] | None,
    output_names: Sequence[str] | None,
    metadata: Mapping[str, bytes] | None,
) -> bytes:
    inputs = [(int(k), int(j)) for k, j in inputs]
    outputs = [(int(k), int(i)) for k, i in outputs]
    edges = {(int(c[0]), int(c[1])): (int(p[0]), int(p[1])) for c, p in edges.items()}
    boundary.check_wiring(
        [len(p.main.inputs) for p in loaded],
        [len(p.main.outputs) for p in loaded],
        inputs,
        edges,
        outputs,
    )
    linker = _Linker(loaded, edges)
    linker.run()
    main = linker.m.main
    main.inputs = [linker.tensor_of(p, "input") for p in inputs]
    main.outputs = [linker.tensor_of(p, "output") for p in outputs]
    linker.check_unreferenced()
    default_in = _unique([_port_name(loaded[k], "input", j) for k, j in inputs])
    default_out = _unique([_port_name(loaded[k], "output", i) for k, i in outputs])
    sig = schema.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    in_names = _names(input_names, default_in, "input_names")
    out_names = _names(output_names, default_out, "output_names")
    sig.inputs = [_tensor_map(n, t) for n, t in zip(in_names, main.inputs, strict=True)]
    sig.outputs = [_tensor_map(n, t) for n, t in zip(out_names, main.outputs, strict=True)]
    entries = _metadata(loaded, metadata, linker.segments)
    segments = {
        "format": SEGMENTS_FORMAT,
        "format_version": 1,
        "segments": linker.segments,
        "boundaries": linker.boundaries,
    }
    entries.append((SEGMENTS_NAME, json.dumps(segments, sort_keys=True).encode()))
    from edgelstm._version import __version__

    description = f"edgelstm {__version__} link of {len(loaded)} segments"
    return linker.m.finish(description, sig, entries)


def _port_name(part: _Part, side: str, position: int) -> str:
    tensors = part.main.inputs if side == "input" else part.main.outputs
    return _signature_names(part, [tensors[position]])[0]


def _unique(names: list[str]) -> list[str]:
    """Default signature names made unique (``name_1``, ...) where two parts share one."""
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in out:
            candidate, n = f"{name}_{n}", n + 1
        out.append(candidate)
    return out


def _names(given: Sequence[str] | None, default: list[str], what: str) -> list[str]:
    names = list(given) if given is not None else default
    if len(names) != len(default):
        raise SpecError(f"link: {what} has {len(names)} names for {len(default)} tensors")
    if len(set(names)) != len(names):
        raise SpecError(f"link: {what} repeats a name: {names}")
    return [str(n) for n in names]


def _tensor_map(name: str, tensor: int) -> schema.TensorMapT:
    m = schema.TensorMapT()
    m.name = name
    m.tensorIndex = int(tensor)
    return m
