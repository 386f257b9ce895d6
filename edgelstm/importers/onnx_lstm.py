"""ONNX importer: a graph of ``LSTM`` nodes (one, or a chain) -> canonical LSTMModel.

ONNX stacks gates i,o,f,c (W [D,4H,I], R [D,4H,H], B [D,8H] = Wb then Rb, P [D,3H] = i,o,f).
Every node that computes the graph outputs must be understood: LSTM nodes, constant weights
and layout-only glue (Identity/Transpose/Squeeze/Reshape), whose effect is checked by
tracking axis labels, so a chain is stacked only when the glue really concatenates the
directions into the next layer's features. What the canonical model cannot express exactly
(``clip``, per-sequence lengths, non-sigmoid gates, ...) is refused, never approximated.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgelstm.errors import ModelFileError, UnsupportedError, WeightsError
from edgelstm.importers.onnx_graph import GLUE, TARGET, Axes, Graph, load_model, norm
from edgelstm.importers.onnx_intake import LstmSite, find_lstms, select_sites
from edgelstm.ir.gate_orders import unstack, unstack_peephole
from edgelstm.ir.model import LSTMLayer, LSTMModel
from edgelstm.ir.roles import name_of, role
from edgelstm.ir.weights import LSTMWeights

_ATTRS = {"activation_alpha", "activation_beta", "activations", "clip", "direction"}
_ATTRS |= {"hidden_size", "input_forget", "layout", "output_sequence"}
# onnxruntime's table (rnn_helpers.cc): which activations consume an alpha / a beta, and
# the defaults when the lists run out (0 for the rest, e.g. a bare Affine is x -> 0).
_ARGS = {"affine": (1, 1), "leakyrelu": (1, 0), "thresholdedrelu": (1, 0), "scaledtanh": (1, 1)}
_ARGS |= {"hardsigmoid": (1, 1), "elu": (1, 0)}
_ARG_DEFAULTS = {"leakyrelu": (0.01, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}
_FLT_MAX = float(np.finfo(np.float32).max)
_FEAT = ("D", "H")  # a layer's output features: directions x hidden, merged


def from_onnx(obj: Any, lstm: str | Sequence[str] | None = None) -> LSTMModel:
    """Import the LSTM node(s) of an ONNX model (a ModelProto, serialized bytes or a path).

    The model's output is the last layer's ``Y`` with directions concatenated on features
    ([T, B, D*H] for layout 0, [B, T, D*H] for layout 1; raw ONNX ``Y`` is that with the
    direction axis split out), or, when ``Y`` is unused, the final ``Y_h`` as [B, D*H].
    Per-direction final states (``Y_h``/``Y_c``) are ``reference_model(...).states[-1]``;
    ``initial_h``/``initial_c`` graph inputs become ``initial_states``.
    ``direction="reverse"`` maps to a ``reverse`` layer: run from the last step to the first,
    with ``Y`` re-aligned to input time (as ONNX defines it).

    ``lstm`` names one LSTM node (or a chain: a list or "A,B") anywhere in the model, also
    inside If/Loop/Scan subgraphs: only it is imported, whatever surrounds it; its input is
    that node's ``X`` and its output that node's ``Y`` (directions merged).
    """
    model, where = load_model(obj)
    from edgelstm.targets.onnx.reader import is_edgelstm_onnx, model_from_edgelstm_onnx

    if is_edgelstm_onnx(model) and lstm is None:  # our own file: its metadata names every weight
        return model_from_edgelstm_onnx(model, where)
    sites = find_lstms(model)
    if lstm is not None:
        return _selected(model, where, select_sites(sites, lstm))
    g = Graph(model.graph, where)
    required = g.required()
    top = {id(s.node): s for s in sites if not s.path}
    lstms = [n for n in required if id(n) in top]
    if not lstms:
        ops = sorted({str(n.op_type) for n in model.graph.node})
        if sites:
            raise UnsupportedError(
                TARGET,
                f"no LSTM node computes the graph outputs directly (ops: {ops}); the model "
                f"holds {_listing(sites)}: compile one with --lstm NAME",
            )
        raise UnsupportedError(TARGET, f"no LSTM node computes the graph outputs (ops: {ops})")
    for n in lstms:
        if top[id(n)].error is not None:  # the node's own problem is the precise reason
            raise top[id(n)].error
        g.understood.update(id(u) for u in top[id(n)].used)
    _refuse_other_ops(g, required, lstms, sites)
    chain, input_glue, glue = _chain(g, lstms)
    infos = [_Lstm(top[id(n)]) for n in chain]
    # Where the graph input's axes land in the first X decides the model's layout.
    dims = g.static_dims((input_glue or chain)[0].input[0])
    known = {f"x{k}": d for k, d in enumerate(dims or []) if d is not None}
    got = g.trace_labels(input_glue, [("x0",), ("x1",), ("x2",)], known)
    if sorted(got) != [("x0",), ("x1",), ("x2",)] or got[2] != ("x2",):
        raise UnsupportedError(TARGET, f"the graph input reaches the first LSTM as axes {got}")
    time_major = infos[0].x_axes(("I",))[got.index(("x0",))] == ("T",)
    seq_len = dims[0 if time_major else 1] if dims and len(dims) == 3 else None
    batch = dims[1 if time_major else 0] if dims and len(dims) == 3 else None
    _check_between(g, infos, glue, _seq_sizes(seq_len, batch))
    outs = _outputs(g, infos[-1], time_major, batch, seq_len)
    for info in infos:
        info.check_optional_inputs(seq_len)
    g.check_accounted(required)
    return _model(model, where, infos, outs, time_major)


def _seq_sizes(seq_len: int | None, batch: int | None) -> dict[str, int]:
    """Known T / B sizes: fixed-shape glue (torch's dynamo Reshape) is checked against them."""
    return {k: v for k, v in (("T", seq_len), ("B", batch)) if v}


def _check_between(g: Graph, infos: list[_Lstm], glue: list[list[Any]], sizes: dict) -> None:
    for prev, node, nodes in zip(infos[:-1], infos[1:], glue, strict=True):
        got = g.trace_labels(nodes, prev.y_axes(), prev.sizes() | sizes)
        if got != norm(node.x_axes(_FEAT), prev.sizes()):
            raise UnsupportedError(
                TARGET,
                f"the nodes between LSTMs {prev.name!r} and {node.name!r} do not concatenate "
                f"the directions into the next layer's features (axes {got})",
            )


def _model(
    model: Any, where: str, infos: list[_Lstm], outs: dict[str, str], time_major: bool
) -> LSTMModel:
    notes = [n for info in infos for n in info.site.notes]
    return LSTMModel(
        layers=tuple(info.layer() for info in infos),
        return_sequences="y" in outs,
        return_state="c" in outs or ("y" in outs and "h" in outs),
        time_major=time_major,
        provenance={
            "source": "onnx",
            "origin": where,
            "producer": model.producer_name,
            "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
            "nodes": [info.site.where for info in infos],
            "outputs": outs,
            "initial_state_inputs": [name for info in infos for name in info.state_inputs],
            **({"notes": notes} if notes else {}),
        },
    )


def _selected(model: Any, where: str, sites: list[LstmSite]) -> LSTMModel:
    """``--lstm``: the named node (chain) alone, from its X to its Y (directions merged)."""
    infos = [_Lstm(s) for s in sites]
    g = Graph(sites[0].scope.graph, where)
    glue = []
    for prev, info in itertools.pairwise(infos):
        src, k, nodes = g.source(info.node.input[0] if info.node.input else "")
        if src is not prev.node or k != 0:
            raise UnsupportedError(
                TARGET, f"--lstm: X of {info.site.where!r} is not Y of {prev.site.where!r}"
            )
        glue.append(nodes)
    time_major = infos[0].layout == 0
    x = infos[0].node.input[0] if infos[0].node.input else ""
    dims = g.static_dims(x) if x in g.inputs else _inferred_dims(model, x)
    seq_len = dims[0 if time_major else 1] if dims and len(dims) == 3 else None
    batch = dims[1 if time_major else 0] if dims and len(dims) == 3 else None
    _check_between(g, infos, glue, _seq_sizes(seq_len, batch))
    for info in infos:
        info.check_optional_inputs(seq_len)
    return _model(model, where, infos, {"y": infos[-1].node.output[0]}, time_major)


def _inferred_dims(model: Any, name: str) -> list[int | None] | None:
    """Static dims of an intermediate tensor by onnx shape inference (None if unknown)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is best effort; unknown sizes stay dynamic
        return None
    for vi in inferred.graph.value_info:
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            return [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return None


def _listing(sites: list[LstmSite]) -> str:
    shown = [s.where for s in sites[:8]]
    more = f" and {len(sites) - 8} more" if len(sites) > 8 else ""
    return f"LSTM nodes {shown}{more}"


def _refuse_other_ops(g: Graph, required: list[Any], lstms: list[Any], sites: list) -> None:
    """Ops besides LSTMs, glue and constants: list them and name both ways out."""
    lstm_ids = {id(n) for n in lstms}
    odd = sorted(
        {
            f"{n.op_type} ({n.name})"
            for n in required
            if id(n) not in g.understood and id(n) not in lstm_ids and n.op_type not in GLUE
        }
    )
    if odd:
        raise UnsupportedError(
            TARGET,
            f"the graph also computes with {odd}; compile the LSTM alone with --lstm NAME "
            f"(or a chain: --lstm A,B) from {_listing(sites)}, or rewrite the whole graph "
            "to ONNX (-o OUT.onnx: every LSTM replaced, the other ops kept)",
        )


def _chain(g: Graph, lstms: list[Any]) -> tuple[list[Any], list[Any], list[list[Any]]]:
    """Order the LSTM nodes into one chain: (nodes, input glue, glue between each pair)."""
    sources = {id(n): g.source(n.input[0] if n.input else "") for n in lstms}
    for n in lstms:
        src, k, _ = sources[id(n)]
        if src is not None and (id(src) not in {id(n) for n in lstms} or k != 0):
            what = f"{src.op_type} node {src.name!r}" + (" (its Y_h/Y_c)" if k else "")
            raise UnsupportedError(TARGET, f"X of LSTM {n.name!r} comes from a {what}")
    heads = [n for n in lstms if sources[id(n)][0] is None]
    if len(heads) != 1:
        raise UnsupportedError(
            TARGET, f"expected one chain of LSTM nodes fed by a graph input, found {len(heads)}"
        )
    g.understood.update(id(n) for n in lstms)
    chain, glue = heads, []
    while nxt := [n for n in lstms if sources[id(n)][0] is chain[-1]]:
        if len(nxt) > 1:
            raise UnsupportedError(TARGET, f"LSTM {chain[-1].name!r} feeds several LSTM nodes")
        chain.append(nxt[0])
        glue.append(sources[id(nxt[0])][2])
    return chain, sources[id(heads[0])][2], glue


def _outputs(
    g: Graph, last: _Lstm, time_major: bool, batch: int | None, seq_len: int | None
) -> dict[str, str]:
    """Map graph outputs to the last LSTM's Y / Y_h / Y_c, checking any output glue."""
    outs: dict[str, str] = {}
    sizes = last.sizes() | _seq_sizes(seq_len, batch)
    for name in g.outputs:
        node, k, glue = g.source(name)
        if node is not last.node:
            what = "a graph input" if node is None else f"a {node.op_type} node {node.name!r}"
            raise UnsupportedError(
                TARGET,
                f"graph output {name!r} comes from {what}, not from the last LSTM {last.name!r}; "
                "only LSTM nodes and layout-only glue are imported",
            )
        key = ("y", "h", "c")[k]
        if key in outs:
            raise UnsupportedError(TARGET, f"graph outputs {outs[key]!r} and {name!r} repeat one")
        outs[key] = name
        if key != "y":
            if any(n.op_type != "Identity" for n in glue):
                raise UnsupportedError(TARGET, f"graph output {name!r}: Y_h/Y_c must be raw")
            continue
        got = g.trace_labels(glue, last.y_axes(), sizes)
        seq = [("T",), ("B",)] if time_major else [("B",), ("T",)]
        if got == last.y_axes():  # raw Y: the same values, direction axis not merged
            if seq != [a for a in got if a in seq]:
                raise UnsupportedError(TARGET, f"graph output {name!r}: time/batch order flips")
        elif got != [*seq, norm([_FEAT], last.sizes())[0]]:
            raise UnsupportedError(TARGET, f"graph output {name!r}: unsupported layout {got}")
    return outs


class _Lstm:
    """One LSTM node: attributes validated, weights resolved per direction."""

    def __init__(self, site: LstmSite) -> None:
        if site.error is not None:
            raise site.error
        self.site, self.node = site, site.node
        self.name = site.name
        self.state_inputs: list[str] = []
        attrs = site.attrs
        unknown = sorted(set(attrs) - _ATTRS)
        if unknown:
            raise UnsupportedError(TARGET, f"LSTM {self.name!r}: unknown attributes {unknown}")
        self.direction = attrs.get("direction", "forward")
        self.layout = int(attrs.get("layout", 0))
        valid = self.direction in ("forward", "reverse", "bidirectional")
        if not valid or self.layout not in (0, 1):
            raise ModelFileError(
                f"LSTM {self.name!r}: invalid direction {self.direction!r} or layout {self.layout}"
            )
        clip = attrs.get("clip")
        if clip is not None and not float(clip) >= _FLT_MAX:  # FLT_MAX: ORT's "no clip"
            raise UnsupportedError(
                TARGET,
                f"LSTM {self.name!r}: clip={clip} clips the gate pre-activations, which no TFLite "
                "kernel does (TFLite's cell_clip clips the cell state, a different operation)",
            )
        self.n_dir = d = 2 if self.direction == "bidirectional" else 1
        w, r, b, p = (site.params.get(what) for what in "WRBP")
        if w is None or r is None:
            raise ModelFileError(f"LSTM {self.name!r}: input W or R is missing")
        self.h = h = int(attrs.get("hidden_size", r.shape[-1] if r.ndim == 3 else 0))
        want = {"W": (d, 4 * h, None), "R": (d, 4 * h, h), "B": (d, 8 * h), "P": (d, 3 * h)}
        for what, arr in zip("WRBP", (w, r, b, p), strict=True):
            shape = want[what]
            if arr is not None and (
                arr.ndim != len(shape)
                or any(e not in (None, s) for e, s in zip(shape, arr.shape, strict=False))
            ):
                raise WeightsError(
                    f"LSTM {self.name!r} {what}: expected shape "
                    f"{[s if s is not None else 'input_size' for s in shape]} "
                    f"(direction={self.direction}, hidden_size={h}), found {list(arr.shape)}"
                )
        acts = self._activations(attrs)
        cifg = bool(attrs.get("input_forget", 0))
        self.weights = [_weights(w, r, b, p, k, h, cifg, acts[k]) for k in range(d)]

    def _activations(self, attrs: dict[str, Any]) -> list[str]:
        """Canonical activation per direction; f must be Sigmoid, g and h equal."""
        names = [str(a).lower() for a in attrs.get("activations", [])]
        names = names or ["sigmoid", "tanh", "tanh"] * self.n_dir
        if len(names) != 3 * self.n_dir:
            raise ModelFileError(
                f"LSTM {self.name!r}: expected {3 * self.n_dir} activations, found {len(names)}"
            )
        alphas = list(attrs.get("activation_alpha", []))
        betas = list(attrs.get("activation_beta", []))
        mapped = []
        for name in names:  # alpha/beta are consumed in order, as onnxruntime does
            use_a, use_b = _ARGS.get(name, (0, 0))
            default = _ARG_DEFAULTS.get(name, (0.0, 0.0))
            alpha = (alphas.pop(0) if alphas else default[0]) if use_a else None
            beta = (betas.pop(0) if betas else default[1]) if use_b else None
            mapped.append(_activation(name, alpha, beta))
        for k in range(0, len(names), 3):
            f, g, h = names[k : k + 3]
            if mapped[k] != "sigmoid":
                raise UnsupportedError(
                    TARGET, f"LSTM {self.name!r}: gate activation {f}; only Sigmoid"
                )
            if mapped[k + 1] is None or mapped[k + 1] != mapped[k + 2]:
                raise UnsupportedError(
                    TARGET,
                    f"LSTM {self.name!r}: cell/output activations g={g}, h={h}; the canonical "
                    "LSTM uses one of Tanh/Relu/Sigmoid/Affine(1, 0) for both",
                )
        return mapped[1::3]

    def check_optional_inputs(self, seq_len: int | None) -> None:
        """sequence_lens must be absent or all full length; initial states zeros or inputs
        (the intake has already refused computed and non-zero constant ones)."""
        lens = self.site.inputs.get("sequence_lens")
        if lens is not None and lens.kind != "absent":
            full = (
                lens.kind == "const" and seq_len and not np.any(np.asarray(lens.value) != seq_len)
            )
            if not full:
                shown = np.ravel(lens.value).tolist() if lens.kind == "const" else lens.source
                raise UnsupportedError(
                    TARGET,
                    f"LSTM {self.name!r}: sequence_lens {shown} (sequence length "
                    f"{seq_len or 'dynamic'}); the canonical model runs every step",
                )
        for what in ("initial_h", "initial_c"):
            got = self.site.inputs.get(what)
            if got is not None and got.kind == "input":  # a per-layer slice names its source
                self.state_inputs.append(got.source + (" (a slice)" if got.nodes else ""))

    def sizes(self) -> dict[str, int]:
        return {"D": self.n_dir, "H": self.h}

    def y_axes(self) -> Axes:
        if self.layout == 0:
            return [("T",), ("D",), ("B",), ("H",)]
        return [("B",), ("T",), ("D",), ("H",)]

    def x_axes(self, feat: tuple[str, ...]) -> Axes:
        return [("T",), ("B",), feat] if self.layout == 0 else [("B",), ("T",), feat]

    def layer(self) -> LSTMLayer:
        back = self.weights[1] if self.n_dir == 2 else None
        return LSTMLayer(self.weights[0], back, reverse=self.direction == "reverse")


def site_layer(site: LstmSite) -> LSTMLayer:
    """One LSTM node as a canonical layer, or the typed reason it is not one.

    Checks the node's own attributes and weights only (not what feeds its states): the
    whole-graph rewrite wires initial states and ``sequence_lens`` as run-time tensors, so a
    state error of the intake does not apply there (pass a site with ``error=None``).
    """
    return _Lstm(site).layer()


def _activation(name: str, alpha: float | None, beta: float | None) -> str | None:
    """ONNX activation -> canonical name, or None when it has no exact equivalent."""
    if name in ("tanh", "relu", "sigmoid"):
        return name
    if name == "affine" and (alpha, beta) == (1.0, 0.0):
        return "linear"
    if name == "scaledtanh" and (alpha, beta) == (1.0, 1.0):
        return "tanh"
    return None


def _weights(
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray | None,
    p: np.ndarray | None,
    d: int,
    h: int,
    cifg: bool,
    activation: str,
) -> LSTMWeights:
    """One direction: unstack ONNX gates; under input_forget the input gate becomes forget.

    onnxruntime computes i from the input-gate parameters and sets f = 1 - i. The canonical
    CIFG computes f and sets i = 1 - f, so f_canon = 1 - sigmoid(z_i) = sigmoid(-z_i): the
    negated input-gate parameters (incl. its peephole) become the forget gate's, exactly.
    """
    bias = None if b is None else b[d, : 4 * h] + b[d, 4 * h :]
    t = unstack("onnx", w[d], r[d], bias)
    if p is not None:
        t.update(unstack_peephole("onnx", p[d]))
    if cifg:
        for kind in ("weight", "recurrent", "bias", "peephole"):
            if name_of(kind, "input") in t:
                t[name_of(kind, "forget")] = -t.pop(name_of(kind, "input"))
    peep = [k for k in t if role(k).kind == "peephole"]
    if peep and not any(np.any(t[k]) for k in peep):  # all-zero P is exactly no peephole
        for k in peep:
            del t[k]
    return LSTMWeights.from_tensors(t, activation=activation)
