"""The bookkeeping under :mod:`.link`: one model object assembled from several .tflite models.

:class:`Merger` owns the result's buffers, operator codes and subgraphs. Each part's
buffers are appended (its buffer 0, the empty sentinel, maps to the result's buffer 0),
its operator codes deduplicated by (builtin code, custom code) keeping the highest version,
its extra subgraphs (WHILE cond/body, IF branches, CALL_ONCE init, StableHLO regions)
appended with every subgraph index in operator options remapped. The main subgraphs are
joined by :mod:`.link`, which decides how the boundary tensors connect.
:func:`check_model` validates the result's indices before it is packed.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field

import flatbuffers

from edgelstm.errors import ModelFileError, UnsupportedError
from edgelstm.targets.tflite.builder import _AlignedBufferT
from edgelstm.targets.tflite.schema import FILE_IDENTIFIER, SCHEMA_VERSION, schema

MAX_FLATBUFFER_BYTES = (1 << 31) - (1 << 24)
"""Constants a linked file may hold: flatbuffers offsets are 32-bit signed (2 GB), with room
left for the graph itself."""

PLACEHOLDER_FOR_GREATER_OP_CODES = 127
"""Largest code ``deprecated_builtin_code`` (an int8) can hold; larger codes store 127 there
and the real code in ``builtin_code``."""


def text(value: bytes | str | None) -> str:
    """A schema string (bytes after unpacking) as str."""
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def resolved_code(code: schema.OperatorCodeT) -> int:
    """The builtin operator of an operator code, whichever field holds it (as TFLite reads it)."""
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def ints(values: object) -> list[int]:
    """An unpacked integer vector (None, a list or a numpy array) as a list of ints.

    Never ``values or []``: a one-element numpy array holding 0 is false.
    """
    return [] if values is None else [int(v) for v in values]  # type: ignore[attr-defined]


def normalize(model: schema.ModelT) -> schema.ModelT:
    """Turn the integer vectors the object API unpacks as numpy arrays into lists."""
    for sub in model.subgraphs or []:
        sub.inputs, sub.outputs = ints(sub.inputs), ints(sub.outputs)
        sub.tensors = list(sub.tensors or [])
        sub.operators = list(sub.operators or [])
        for t in sub.tensors:
            t.shape = ints(t.shape)
            if t.shapeSignature is not None:
                t.shapeSignature = ints(t.shapeSignature)
        for op in sub.operators:
            op.inputs, op.outputs = ints(op.inputs), ints(op.outputs)
            if op.intermediates is not None:
                op.intermediates = ints(op.intermediates)
    return model


@functools.cache
def subgraph_fields() -> dict[type, tuple[str, ...]]:
    """Options classes of the schema with fields naming subgraphs (WhileOptionsT: cond/body,
    IfOptionsT, CallOnceOptionsT, CallOptionsT.subgraph, StableHLO regions, ...), found in
    the generated bindings so a schema that adds one is covered."""
    found: dict[type, tuple[str, ...]] = {}
    for name, cls in vars(schema).items():
        if not (name.endswith("OptionsT") and isinstance(cls, type)):
            continue
        names = tuple(k for k in vars(cls()) if "subgraph" in k.lower())
        if names:
            found[cls] = names
    return found


@dataclass
class PartMap:
    """Where one part's buffers, operator codes and extra subgraphs went in the result."""

    buffers: list[int]
    opcodes: list[int]
    subgraphs: dict[int, int] = field(default_factory=dict)


class Merger:
    """The result model under construction: shared buffers, operator codes, subgraphs."""

    def __init__(self) -> None:
        self.buffers: list[schema.BufferT] = [_AlignedBufferT()]
        self.opcodes: list[schema.OperatorCodeT] = []
        self._opcode_of: dict[tuple[int, bytes], int] = {}
        self.main = schema.SubGraphT()
        self.main.name = "main"
        self.main.tensors, self.main.operators = [], []
        self.main.inputs, self.main.outputs = [], []
        self.subgraphs: list[schema.SubGraphT] = [self.main]

    # -- buffers and operator codes --------------------------------------------------------
    def add_buffer(self, data: bytes | None) -> int:
        buf = _AlignedBufferT()
        if data:
            buf.data = data
        self.buffers.append(buf)
        return len(self.buffers) - 1

    def opcode(self, builtin: int, version: int, custom: bytes | str | None = None) -> int:
        """Index of the operator code (builtin, custom); the highest version seen wins."""
        key = (int(builtin), text(custom).encode())
        if key not in self._opcode_of:
            code = schema.OperatorCodeT()
            code.builtinCode = int(builtin)
            code.deprecatedBuiltinCode = min(int(builtin), PLACEHOLDER_FOR_GREATER_OP_CODES)
            code.customCode = text(custom) if custom else None
            code.version = int(version)
            self._opcode_of[key] = len(self.opcodes)
            self.opcodes.append(code)
        index = self._opcode_of[key]
        self.opcodes[index].version = max(self.opcodes[index].version, int(version))
        return index

    def add_part(self, model: schema.ModelT, where: str, tag: str) -> PartMap:
        """Append ``model``'s buffers, operator codes and extra subgraphs (not its main one;
        a subgraph name already taken gets ``tag`` in front)."""
        buffers = [0]
        for k, buf in enumerate(model.buffers[1:] if model.buffers else [], start=1):
            if int(buf.offset or 0) > 1 or int(buf.size or 0) > 0:
                raise UnsupportedError(
                    "tflite",
                    f"{where}: buffer {k} is stored outside the flatbuffer (a model over 2 GB); "
                    "the linker joins models held whole in their flatbuffers",
                )
            data = None if buf.data is None else bytes(memoryview(buf.data).cast("B"))
            buffers.append(self.add_buffer(data))
        opcodes = [
            self.opcode(resolved_code(c), c.version or 1, c.customCode)
            for c in model.operatorCodes or []
        ]
        pmap = PartMap(buffers, opcodes)
        extra = (model.subgraphs or [])[1:]
        for j in range(1, len(extra) + 1):
            pmap.subgraphs[j] = len(self.subgraphs) + j - 1
        for j, sub in enumerate(extra, start=1):
            new = schema.SubGraphT()
            new.name = text(sub.name)
            if new.name in {text(g.name) for g in self.subgraphs}:
                new.name = tag + new.name  # TFLite does not need unique names; readers do
            new.inputs = ints(sub.inputs)
            new.outputs = ints(sub.outputs)
            new.tensors = [self.tensor(t, pmap, where) for t in sub.tensors or []]
            new.operators = [self.operator(op, pmap, where, None) for op in sub.operators or []]
            self.subgraphs.append(new)
            assert len(self.subgraphs) - 1 == pmap.subgraphs[j]
        return pmap

    # -- tensors and operators -------------------------------------------------------------
    def tensor(self, t: schema.TensorT, pmap: PartMap, where: str, prefix: str = ""):
        """A copy of ``t`` with its buffer remapped (and its name prefixed)."""
        if getattr(t, "externalBuffer", 0):
            raise UnsupportedError(
                "tflite", f"{where}: tensor {text(t.name)!r} uses an external buffer"
            )
        new = copy.copy(t)
        if not 0 <= int(t.buffer) < len(pmap.buffers):
            raise ModelFileError(
                f"{where}: tensor {text(t.name)!r} names missing buffer {t.buffer}"
            )
        new.buffer = pmap.buffers[int(t.buffer)]
        new.name = prefix + text(t.name)
        new.shape = ints(t.shape)
        if t.shapeSignature is not None:
            new.shapeSignature = ints(t.shapeSignature)
        return new

    def operator(
        self, op: schema.OperatorT, pmap: PartMap, where: str, tensors: dict[int, int] | None
    ) -> schema.OperatorT:
        """A copy of ``op`` with its opcode, subgraph references and (when ``tensors`` is
        given) tensor indices remapped; -1 (absent optional input) stays -1."""
        if int(op.largeCustomOptionsSize or 0) > 0:
            raise UnsupportedError(
                "tflite", f"{where}: an operator stores its custom options outside the flatbuffer"
            )
        if not 0 <= int(op.opcodeIndex) < len(pmap.opcodes):
            raise ModelFileError(f"{where}: operator names missing opcode {op.opcodeIndex}")
        new = copy.copy(op)
        new.opcodeIndex = pmap.opcodes[int(op.opcodeIndex)]

        def remap(indices):
            if indices is None or tensors is None:
                return None if indices is None else [int(i) for i in indices]
            return [-1 if int(i) == -1 else tensors[int(i)] for i in indices]

        new.inputs = remap(op.inputs)
        new.outputs = remap(op.outputs)
        new.intermediates = remap(op.intermediates)
        new.builtinOptions = self._options(op.builtinOptions, pmap, where)
        new.builtinOptions2 = self._options(op.builtinOptions2, pmap, where)
        return new

    @staticmethod
    def _options(options: object, pmap: PartMap, where: str) -> object:
        names = subgraph_fields().get(type(options))
        if not names:
            return options
        options = copy.copy(options)

        def moved(j: int) -> int:
            if int(j) not in pmap.subgraphs:
                raise ModelFileError(
                    f"{where}: {type(options).__name__[:-1]} refers to subgraph {j}, which the "
                    "model does not have (or is its main subgraph)"
                )
            return pmap.subgraphs[int(j)]

        for name in names:
            value = getattr(options, name)
            if value is None:
                continue
            if isinstance(value, int):
                setattr(options, name, moved(value))
            else:
                setattr(options, name, [moved(j) for j in value])
        return options

    # -- the result ------------------------------------------------------------------------
    def finish(
        self,
        description: str,
        signature: schema.SignatureDefT,
        metadata: list[tuple[str, bytes]],
    ) -> bytes:
        """Pack the model (unreferenced buffers dropped, buffer 0 kept) and return its bytes."""
        model = schema.ModelT()
        model.version = SCHEMA_VERSION
        model.description = description
        model.operatorCodes = self.opcodes
        model.subgraphs = self.subgraphs
        model.signatureDefs = [signature]
        _compact_buffers(self)
        model.buffers = self.buffers
        size = sum(len(b.data) for b in self.buffers if b.data is not None)
        if size > MAX_FLATBUFFER_BYTES:
            raise UnsupportedError(
                "tflite",
                f"the linked model holds {size:,} bytes of constants; a flatbuffer holds under "
                "2 GB: quantize the segments (int8 or dynamic) to make them smaller",
            )
        if metadata:
            model.metadata = []
            for name, data in metadata:
                entry = schema.MetadataT()
                entry.name = name
                entry.buffer = self.add_buffer(data)
                model.metadata.append(entry)
        check_model(model)
        fb = flatbuffers.Builder(1 << 16)
        fb.Finish(model.Pack(fb), file_identifier=FILE_IDENTIFIER)
        return bytes(fb.Output())


def _compact_buffers(m: Merger) -> None:
    """Drop buffers no tensor refers to (e.g. a connected input's); buffer 0 stays first."""
    used = {0} | {int(t.buffer) for sub in m.subgraphs for t in sub.tensors}
    order = [i for i in range(len(m.buffers)) if i in used]
    new_index = {old: new for new, old in enumerate(order)}
    m.buffers = [m.buffers[i] for i in order]
    for sub in m.subgraphs:
        for t in sub.tensors:
            t.buffer = new_index[int(t.buffer)]


def referenced(sub: schema.SubGraphT) -> set[int]:
    """Tensor indices a subgraph's operators and interface refer to."""
    refs = set(ints(sub.inputs)) | set(ints(sub.outputs))
    for op in sub.operators or []:
        for group in (op.inputs, op.outputs, op.intermediates):
            refs.update(i for i in ints(group) if i >= 0)
    return refs


def check_model(model: schema.ModelT, where: str | None = None) -> None:
    """Every index in range; every non-variable tensor written at most once; graph inputs
    written by no operator. On a part (``where`` names it) a failure is a ModelFileError;
    on the linked result it is a linker bug, reported as such."""
    n_sub, n_buf = len(model.subgraphs), len(model.buffers)
    n_codes = len(model.operatorCodes or [])
    problems: list[str] = []
    for s, sub in enumerate(model.subgraphs):
        n = len(sub.tensors)
        bad = [i for i in list(sub.inputs) + list(sub.outputs) if not 0 <= i < n]
        problems += [f"subgraph {s}: interface tensor {i} out of range" for i in bad]
        problems += [
            f"subgraph {s}: tensor {k} names buffer {t.buffer}"
            for k, t in enumerate(sub.tensors)
            if not 0 <= t.buffer < n_buf
        ]
        writers: dict[int, int] = {}
        for o, op in enumerate(sub.operators):
            if not 0 <= op.opcodeIndex < n_codes:
                problems.append(f"subgraph {s} op {o}: opcode {op.opcodeIndex} out of range")
            ins = [i for i in ints(op.inputs) if i != -1] + ints(op.intermediates)
            problems += [
                f"subgraph {s} op {o}: tensor {i} out of range" for i in ins if not 0 <= i < n
            ]
            for i in ints(op.outputs):
                if not 0 <= i < n:
                    problems.append(f"subgraph {s} op {o}: output {i} out of range")
                elif not sub.tensors[i].isVariable and i in writers:
                    problems.append(f"subgraph {s}: tensor {i} written by ops {writers[i]} and {o}")
                else:
                    writers[i] = o
            for options in (op.builtinOptions, op.builtinOptions2):
                for name in subgraph_fields().get(type(options), ()):
                    value = getattr(options, name)
                    values = [] if value is None else [value] if isinstance(value, int) else value
                    problems += [
                        f"subgraph {s} op {o}: {name} {j} out of range"
                        for j in values
                        if not 0 < j < n_sub
                    ]
        problems += [
            f"subgraph {s}: input {i} is written by op {writers[i]}"
            for i in sub.inputs
            if i in writers
        ]
    for sig in model.signatureDefs or []:
        if not 0 <= sig.subgraphIndex < n_sub:
            problems.append(f"signature {text(sig.signatureKey)}: subgraph {sig.subgraphIndex}")
            continue
        sub = model.subgraphs[sig.subgraphIndex]
        for m in list(sig.inputs or []) + list(sig.outputs or []):
            if not 0 <= m.tensorIndex < len(sub.tensors):
                problems.append(f"signature {text(sig.signatureKey)}: tensor {m.tensorIndex}")
    if problems:
        if where is not None:
            raise ModelFileError(f"{where}: invalid TFLite model: " + "; ".join(problems[:5]))
        raise AssertionError("link produced an invalid model: " + "; ".join(problems[:10]))


def check_var_handles(models: list[schema.ModelT]) -> None:
    """Refuse two parts sharing a resource variable name: linked, they would alias."""
    owner: dict[tuple[str, str], int] = {}
    for k, model in enumerate(models):
        for sub in model.subgraphs:
            for op in sub.operators:
                o = op.builtinOptions
                if isinstance(o, schema.VarHandleOptionsT):
                    key = (text(o.container), text(o.sharedName))
                    if owner.setdefault(key, k) != k:
                        raise UnsupportedError(
                            "tflite",
                            f"segments {owner[key]} and {k} both use resource variable "
                            f"{key[1]!r}: linked, they would share it; rename it in one of them",
                        )
