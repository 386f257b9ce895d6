"""Find every LSTM in an ONNX model and resolve what feeds it: the reusable intake.

:func:`find_lstms` walks the top-level graph and every ``If`` / ``Loop`` / ``Scan`` (any
graph attribute) subgraph, and returns one :class:`LstmSite` per ``LSTM`` or
``com.microsoft.DynamicQuantizeLSTM`` node: its path, attributes, float64 weights
(DynamicQuantizeLSTM dequantized, and said so), how its initial states and
``sequence_lens`` resolve (see :mod:`.onnx_fold`), and — instead of raising — the reason it
cannot be compiled, so ``inspect`` can list every node and the importer (and the whole-graph
rewrite) can pick the ones that work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgelstm.errors import EdgeLSTMError, ModelFileError, UnsupportedError, WeightsError
from edgelstm.importers.onnx_fold import Resolved, Scope
from edgelstm.importers.onnx_graph import TARGET, node_attrs

_MS = "com.microsoft"
_ONNX_DOMAINS = ("", "ai.onnx")
_PROJ_HINT = (
    "the exported graph dropped the projection (torch.onnx's dynamo exporter writes "
    "nn.LSTM(proj_size=...) with hidden_size = proj_size and no projection weights); "
    "compile the PyTorch state_dict instead: edgelstm compile lstm.pt -o out.tflite "
    "--prefix PREFIX (plus --batch-first if the nn.LSTM had it)"
)


@dataclass
class LstmSite:
    """One LSTM node and what its inputs resolve to."""

    path: str  # "" for the top-level graph, else "If 'node'/then_branch/..."
    node: Any
    scope: Scope
    attrs: dict[str, Any]
    params: dict[str, np.ndarray | None] = field(default_factory=dict)  # W R B P, ONNX layout
    inputs: dict[str, Resolved] = field(default_factory=dict)  # sequence_lens, initial_h/c
    notes: list[str] = field(default_factory=list)
    used: list[Any] = field(default_factory=list)  # nodes that compute its constant inputs
    error: EdgeLSTMError | None = None  # why it cannot be compiled (raised by the importer)

    @property
    def problem(self) -> str | None:
        return None if self.error is None else str(self.error)

    @property
    def name(self) -> str:
        return self.node.name or next((o for o in self.node.output if o), "LSTM")

    @property
    def where(self) -> str:
        return f"{self.path}/{self.name}" if self.path else self.name

    @property
    def n_dir(self) -> int:
        return 2 if self.attrs.get("direction") == "bidirectional" else 1

    def features(self) -> dict[str, Any]:
        """Sizes and options, for inspect and error messages."""
        w, p = self.params.get("W"), self.params.get("P")
        return {
            "op": self.node.op_type,
            "input_size": int(w.shape[-1]) if w is not None and w.ndim == 3 else None,
            "hidden_size": self.attrs.get("hidden_size"),
            "direction": self.attrs.get("direction", "forward"),
            "layout": int(self.attrs.get("layout", 0)),
            "peephole": p is not None and bool(np.any(p)),
            "states": {k: v.kind for k, v in self.inputs.items() if k != "sequence_lens"},
        }


def scopes(model: Any) -> list[tuple[str, Scope]]:
    """Every graph of ``model`` (top level first) with its path."""
    opsets = {o.domain or "": o.version for o in model.opset_import}
    out: list[tuple[str, Scope]] = []

    def walk(graph: Any, path: str, parent: Scope | None) -> None:
        scope = Scope(graph, path or "main graph", opsets, parent)
        out.append((path, scope))
        for node in graph.node:
            for attr in node.attribute:
                subs = [attr.g] if attr.type == 5 else list(attr.graphs) if attr.type == 10 else []
                for k, sub in enumerate(subs):
                    tag = attr.name if len(subs) == 1 else f"{attr.name}[{k}]"
                    label = f"{node.op_type} {node.name or node.output[0]!r}/{tag}"
                    walk(sub, f"{path}/{label}" if path else label, scope)

    walk(model.graph, "", None)
    return out


def find_lstms(model: Any) -> list[LstmSite]:
    """Every LSTM / DynamicQuantizeLSTM node anywhere in ``model``, resolved (no raising)."""
    sites = []
    for path, scope in scopes(model):
        for node in scope.graph.node:
            ours = node.op_type == "LSTM" and node.domain in _ONNX_DOMAINS
            if ours or (node.op_type == "DynamicQuantizeLSTM" and node.domain == _MS):
                sites.append(_site(path, scope, node))
    return sites


def _site(path: str, scope: Scope, node: Any) -> LstmSite:
    try:
        attrs = node_attrs(node)
    except Exception as exc:  # noqa: BLE001 - a damaged attribute: reported, not raised
        err = exc if isinstance(exc, EdgeLSTMError) else ModelFileError(str(exc))
        return LstmSite(path, node, scope, {}, error=err)
    site = LstmSite(path, node, scope, attrs)
    try:
        site.error = _params(site) or _optional_inputs(site)
    except EdgeLSTMError as exc:  # e.g. an unreadable initializer
        site.error = exc
    except (ValueError, IndexError, TypeError) as exc:  # inputs of impossible shapes
        site.error = ModelFileError(f"LSTM {site.where!r}: malformed inputs ({exc})")
    return site


def _input(node: Any, k: int) -> str:
    return node.input[k] if len(node.input) > k else ""


def _const(site: LstmSite, k: int, what: str) -> tuple[np.ndarray | None, str | None]:
    """A weight input as a constant array, or the reason it is not one."""
    name = _input(site.node, k)
    got = site.scope.resolve(name)
    site.used.extend(got.nodes)
    if got.kind == "absent":
        return None, None
    if got.kind == "const" and got.value is not None:
        if name in site.scope.defaulted:
            site.notes.append(f"{what} read from the initializer default of graph input {name!r}")
        return got.value, None
    if got.kind == "zero":
        return None, f"{what} {name!r} is built from shapes, not stored"
    if got.kind == "input":
        return None, (
            f"{what} {name!r} is a graph input with no initializer default, so its values are "
            "not in the file; give it an initializer (or fold it) and retry"
        )
    return None, f"{what} {name!r} is computed by a {got.source}, not a constant"


def _params(site: LstmSite) -> EdgeLSTMError | None:
    """Read W, R, B, P (dequantizing DynamicQuantizeLSTM); check shapes vs hidden_size."""
    ms = site.node.op_type == "DynamicQuantizeLSTM"
    for what, k in (("W", 1), ("R", 2), ("B", 3), ("P", 7)):
        if what == "B":  # shapes first: the proj_size bug also garbles B
            if site.params["W"] is None or site.params["R"] is None:
                return ModelFileError(f"LSTM {site.where!r}: input W or R is missing")
            if ms:
                why = _dequantize(site)
                if why:
                    return why
            bad = _check_hidden(site)
            if bad:
                return bad
        value, why = _const(site, k, what)
        if why:
            return UnsupportedError(TARGET, f"LSTM {site.where!r}: {why}")
        if value is not None and not (
            np.issubdtype(value.dtype, np.number) and not np.iscomplexobj(value)
        ):
            return WeightsError(
                f"LSTM {site.where!r} {what}: expected real numbers, found {value.dtype}"
            )
        site.params[what] = value
    for what, value in site.params.items():
        if value is not None:
            with np.errstate(all="ignore"):
                site.params[what] = value.astype(np.float64)
    return None


def _dequantize(site: LstmSite) -> EdgeLSTMError | None:
    """DynamicQuantizeLSTM: W [D, I, 4H] / R [D, H, 4H] int8 with per-direction (or
    per-channel) scale and zero point -> float W [D, 4H, I] / R [D, 4H, H]."""
    for what, k in (("W", 8), ("R", 10)):
        q = site.params[what]
        scale, why = _const(site, k, f"{what}_scale")
        zero, why2 = _const(site, k + 1, f"{what}_zero_point")
        if why or why2 or scale is None:
            reason = why or why2 or f"{what}_scale is missing"
            return UnsupportedError(TARGET, f"DynamicQuantizeLSTM {site.where!r}: {reason}")
        d = q.shape[0]
        s = scale.astype(np.float64).reshape(d, 1, -1)
        z = np.zeros_like(s) if zero is None else zero.astype(np.float64).reshape(d, 1, -1)
        site.params[what] = np.transpose((q.astype(np.float64) - z) * s, (0, 2, 1))
    site.notes.append(
        "DynamicQuantizeLSTM: int8 weights dequantized to float (scale x (q - zero_point)); "
        "onnxruntime also quantizes activations at run time, the compiled float LSTM does not"
    )
    return None


def _check_hidden(site: LstmSite) -> EdgeLSTMError | None:
    """hidden_size must agree with W/R; the dynamo proj_size bug is named."""
    w, r = site.params["W"], site.params["R"]
    if w.ndim != 3 or r.ndim != 3:
        return WeightsError(
            f"LSTM {site.where!r}: W and R must be 3-D, found {list(w.shape)}, {list(r.shape)}"
        )
    h = int(site.attrs.get("hidden_size", r.shape[-1]))
    site.attrs.setdefault("hidden_size", h)
    r_ok = r.shape[1] == 4 * h and r.shape[2] == h
    states = [site.scope.resolve(_input(site.node, k)) for k in (5, 6)]
    odd = [list(s.value.shape) for s in states if s.kind == "const" and s.value.shape[-1:] != (h,)]
    if r_ok and (w.shape[1] != 4 * h or odd):
        return UnsupportedError(
            TARGET,
            f"LSTM {site.where!r}: hidden_size={h} disagrees with "
            + (f"W {list(w.shape)}" if w.shape[1] != 4 * h else f"initial states {odd}")
            + f": {_PROJ_HINT}",
        )
    if not r_ok or w.shape[1] != 4 * h:
        return WeightsError(
            f"LSTM {site.where!r}: W {list(w.shape)} / R {list(r.shape)} disagree with "
            f"hidden_size={h} (expected [D, {4 * h}, I] / [D, {4 * h}, {h}])"
        )
    return None


def _optional_inputs(site: LstmSite) -> EdgeLSTMError | None:
    """sequence_lens and initial states: zero / constant / graph input, else the reason."""
    for what, k in (("sequence_lens", 4), ("initial_h", 5), ("initial_c", 6)):
        got = site.scope.resolve(_input(site.node, k))
        site.inputs[what] = got
        site.used.extend(got.nodes)
        if got.kind == "computed" and site.scope.shape_only(_input(site.node, k)):
            return UnsupportedError(
                TARGET,
                f"LSTM {site.where!r}: {what} {_input(site.node, k)!r} is built from the input's "
                f"shape by a {got.source} and is not provably zero (only zero initial states "
                "and full-length sequence_lens can be imported)",
            )
        if got.kind == "computed":
            return UnsupportedError(
                TARGET,
                f"LSTM {site.where!r}: {what} {_input(site.node, k)!r} is computed by a "
                f"{got.source} from run-time data; only zeros, constants and graph inputs "
                "can be imported",
            )
        if what != "sequence_lens" and got.kind == "const" and np.any(got.value):
            return UnsupportedError(
                TARGET, f"LSTM {site.where!r}: a constant non-zero {what} cannot be stored"
            )
    return None


def select_sites(sites: list[LstmSite], lstm: str | Sequence[str]) -> list[LstmSite]:
    """The sites ``--lstm`` names (node name or path/name; "A,B" for a chain), in order."""
    names = [n.strip() for n in lstm.split(",")] if isinstance(lstm, str) else list(lstm)
    picked = []
    for name in names:
        hits = [s for s in sites if name in (s.name, s.where)]
        if len(hits) != 1:
            known = [s.where for s in sites] or "none"
            what = "matches several nodes (give the path)" if hits else "is not an LSTM node"
            raise UnsupportedError(
                TARGET, f"--lstm {name!r} {what}; LSTM nodes in this model: {known}"
            )
        picked.append(hits[0])
    if not picked:
        raise UnsupportedError(TARGET, "--lstm: give a node name (see edgelstm inspect)")
    if len({id(s.scope) for s in picked}) > 1:
        raise UnsupportedError(TARGET, "--lstm: a chain must lie in one graph (subgraph)")
    return picked
