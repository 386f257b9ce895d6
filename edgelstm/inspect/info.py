"""What is inside a .tflite or .onnx file: ops, tensor roles, shapes, dtypes, quantization.

Parsing uses only the flatbuffer schema bindings shipped with ai-edge-litert (no interpreter,
no TensorFlow) and the onnx protobuf, so ``edgelstm inspect`` answers in a fraction of a
second and works on files an interpreter would refuse. The fused LSTM's inputs are named by
:mod:`edgelstm.ir.roles`, the one table every other part of edgelstm uses, so what inspect
prints is exactly what the emitters and the quantizer mean by a role.

This module holds only the data model. Parsing lives in :mod:`edgelstm.inspect.tflite` and
:mod:`edgelstm.inspect.onnx`, the text form in :mod:`edgelstm.inspect.text`, and
:func:`edgelstm.inspect.inspect_model` picks the parser by file type.

Files are untrusted: how a corrupted or adversarial file is reported (a
:class:`~edgelstm.errors.ModelFileError`, or the odd field shown as such) is described in
:mod:`edgelstm.inspect.decode`. The properties below read metadata through :func:`_obj` /
:func:`_seq`, so JSON of an unexpected shape is ignored rather than crashing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgelstm.ir.roles import INTERMEDIATES, ROLES

LSTM_OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"
LSTM_INTERMEDIATES = tuple(i.name for i in INTERMEDIATES)
"""Names of the five intermediates of the full-integer fused LSTM (gate scales, then h)."""
ONNX_LSTM_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
ONNX_DQ_LSTM_INPUTS = ONNX_LSTM_INPUTS + ("W_scale", "W_zero_point", "R_scale", "R_zero_point")
FC_INPUTS = ("input", "weights", "bias")
SMALL_VALUES = 8
"""Constant tensors with at most this many elements show their values."""


@dataclass
class TensorInfo:
    """One tensor as the file stores it (``shape`` uses -1 / names for dynamic dims)."""

    name: str
    shape: list[Any]
    dtype: str
    index: int | None = None
    role: str | None = None
    constant: bool = False
    variable: bool = False
    nbytes: int = 0
    quantization: dict[str, Any] | None = None
    value: list[Any] | None = None
    note: str | None = None
    """What is odd about the tensor in the file (e.g. "raw_data 8 bytes, dims imply 16")."""


@dataclass
class OpInfo:
    """One operator with its inputs named by role where the op is known."""

    index: int
    op: str
    version: int | None
    inputs: list[TensorInfo | None]
    outputs: list[TensorInfo]
    options: dict[str, Any] = field(default_factory=dict)
    intermediates: list[TensorInfo] = field(default_factory=list)
    subgraph: int = 0
    domain: str = ""


@dataclass
class ModelInfo:
    """Everything ``edgelstm inspect`` reports about one model file."""

    path: str
    format: str
    size_bytes: int
    producer: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    ops: list[OpInfo]
    metadata: dict[str, Any]
    weight_bytes: int
    quantization: str
    """"float", "float16", "dynamic" (int8 weights, float activations), "int8", "int16x8"
    (int16 activations, int8 weights) or "qdq"."""
    warnings: list[str] = field(default_factory=list)
    """Problems the file will have on some runtime or CPU (e.g. int8 weights that saturate)."""
    lstm_nodes: list[dict[str, Any]] = field(default_factory=list)
    """ONNX: every LSTM node (subgraphs too) with its path, features and what edgelstm can
    compile it to (see :func:`edgelstm.inspect.onnx.lstm_nodes`)."""
    graph_time_major: bool | None = None
    """ONNX from an exporter: the input layout the graph's LSTM chain reads (None: unknown)."""

    @property
    def state_across_invokes(self) -> str | None:
        """ "reset" when every fused LSTM state is written by an op before the LSTM (the file
        answers the same on every invoke), "carried" when none is (stateful / streaming),
        "mixed" otherwise; for unfused files "built" (zero state built in the graph) or "inputs"
        (the caller feeds the state); None otherwise (ONNX files are stateless)."""
        state_roles = {r.name for r in ROLES if r.kind == "state"}
        states = {
            t.index
            for o in self.ops
            if o.op == LSTM_OP
            for t in o.inputs
            if t is not None and t.role in state_roles
        }
        if not states:
            meta = _obj(self.metadata.get("edgelstm"))  # unfused TFLite: state as graph I/O
            if meta.get("state_io"):
                return "inputs"
            return "built" if meta.get("lowering") and "final_states" in meta else None
        written = {t.index for o in self.ops if o.op != LSTM_OP for t in o.outputs} & states
        return "reset" if written == states else "carried" if not written else "mixed"

    @property
    def lstm_ops(self) -> list[OpInfo]:
        return [o for o in self.ops if o.op in (LSTM_OP, "LSTM", "DynamicQuantizeLSTM")]

    @property
    def provenance(self) -> dict[str, Any]:
        """What the edgelstm emitters recorded: ``source``, ``digests`` (one weights digest per
        direction, layer by layer), ``time_major``, ``quantize``, ``nodes`` (the ONNX LSTM
        nodes an ONNX source's model was taken from); {} for foreign files.

        TFLite keeps one JSON entry ``edgelstm``; ONNX keeps flat ``edgelstm.*`` properties.
        """
        meta = self.metadata.get("edgelstm")
        if isinstance(meta, dict):
            model = _obj(meta.get("model"))
            return {
                "source": meta.get("source"),
                "digests": [
                    _obj(d).get("weights_digest")
                    for layer in _seq(model.get("layers"))
                    for d in _seq(_obj(layer).get("directions"))
                ],
                "time_major": model.get("time_major"),
                "quantize": _obj(meta.get("options")).get("quantize"),
                "nodes": _seq(_obj(meta.get("provenance")).get("nodes")),
            }
        if not any(str(k).startswith("edgelstm.") for k in self.metadata):
            return {}
        digests = _seq(self.metadata.get("edgelstm.weights_digest"))
        return {
            "source": self.metadata.get("edgelstm.source"),
            "digests": [
                d for layer in digests for d in (layer if isinstance(layer, list) else [layer])
            ],
            "time_major": _obj(self.metadata.get("edgelstm.options")).get("time_major"),
            "quantize": self.metadata.get("edgelstm.quantize"),
            "nodes": _seq(_obj(self.metadata.get("edgelstm.provenance")).get("nodes")),
        }

    @property
    def time_major(self) -> bool:
        """Whether the model input is [T, B, I]: the TFLite op option, else provenance, else
        the layout an exporter's ONNX LSTM chain reads, else an ONNX input whose first
        dimension is named like time."""
        for op in self.lstm_ops:
            if op.op == LSTM_OP:
                return bool(_obj(op.options).get("time_major", False))
        recorded = self.provenance.get("time_major")
        if recorded is not None:
            return bool(recorded)
        if self.graph_time_major is not None:
            return self.graph_time_major
        if self.inputs and self.inputs[0].shape:
            first = self.inputs[0].shape[0]
            return isinstance(first, str) and first.lower() in ("t", "time", "seq", "seq_len")
        return False

    @property
    def output_quantization(self) -> dict[str, Any] | None:
        """Quantization of the first output, or of the tensor a DEQUANTIZE turns into it
        (a float-interface int8 model): one LSB of the model's real output resolution."""
        if not self.outputs:
            return None
        out = self.outputs[0]
        if out.quantization and np_kind(out.dtype) in "iu":
            return out.quantization
        for op in self.ops:
            if op.op == "DEQUANTIZE" and op.outputs and op.outputs[0].name == out.name:
                src = op.inputs[0] if op.inputs else None
                return src.quantization if src is not None else None
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["time_major"] = self.time_major
        data["provenance"] = self.provenance
        data["output_quantization"] = self.output_quantization
        return data


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else {} (metadata read from a file may be anything)."""
    return value if isinstance(value, dict) else {}


def _seq(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else [] (a string is not a list of digests)."""
    return value if isinstance(value, list) else []


def np_kind(dtype: str) -> str:
    """numpy kind letter of a dtype name ("f", "i", "u", ...; "?" when unknown)."""
    import numpy as np

    if dtype == "?":  # inspect's "unknown", not numpy's bool code
        return "?"
    try:
        return np.dtype(dtype).kind
    except (TypeError, ValueError):
        return "?"
