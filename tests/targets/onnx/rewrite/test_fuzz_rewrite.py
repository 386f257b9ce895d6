"""Hypothesis: the whole-graph rewrite on mutated exporter-style graphs.

Property: ``rewrite_onnx`` (float and dynamic) either returns a model or raises an
:class:`EdgeLSTMError`, never another exception; and when it returns one while onnxruntime
runs the mutated ORIGINAL, the rewritten model runs too and gives the same outputs
(<= 1e-5). Seeds and mutations are the intake fuzzer's
(tests/robustness/test_fuzz_onnx_intake.py: zero states from shapes, per-layer slices of
state inputs, LSTMs inside If branches; edits to attributes, edges, initializers, shapes,
opsets).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "robustness"))

from _fuzz import Property, as_param, run_property
from test_fuzz_onnx_intake import _edited, edit_case, seeds

from edgelstm.errors import EdgeLSTMError

ort = pytest.importorskip("onnxruntime")
H, F = 4, 3
FEEDS = {
    "zero_states": {"x": np.linspace(-1, 1, 5 * 2 * F, dtype=np.float32).reshape(5, 2, F)},
    "state_inputs": {"x": np.linspace(-1, 1, 5 * F, dtype=np.float32).reshape(5, 1, F)}
    | {k: np.full((2, 1, H), 0.3, np.float32) for k in "hc"},
    "if": {"x": np.linspace(-1, 1, 5 * 2 * F, dtype=np.float32).reshape(5, 2, F)}
    | {"cond": np.array(False)},
}


def _outputs(data: bytes, feeds: dict) -> list[np.ndarray] | None:
    """onnxruntime's outputs, or None when it refuses the graph or the feeds."""
    try:
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        names = {i.name for i in sess.get_inputs()}
        return sess.run(None, {k: v for k, v in feeds.items() if k in names})
    except Exception:  # noqa: BLE001 - a broken mutant: nothing to compare against
        return None


def check_rewrite_edits(case: tuple[str, list[tuple]]) -> None:
    from edgelstm.ir.options import CompileOptions
    from edgelstm.targets.onnx.rewrite import rewrite_onnx

    data = _edited(case)
    for options in (None, CompileOptions(quantize="dynamic")):
        try:
            proto, report = rewrite_onnx(data, options)
        except EdgeLSTMError as exc:
            assert str(exc).strip()
            continue
        report.summary(), report.to_json()
        if options is not None or not report.applied:
            continue
        want = _outputs(data, FEEDS[case[0]])
        if want is None:
            continue
        got = _outputs(proto.SerializeToString(), FEEDS[case[0]])
        assert got is not None, "the original runs, the rewritten model does not"
        for w, g in zip(want, got, strict=True):
            assert w.shape == g.shape
            assert np.allclose(w, g, atol=1e-5, equal_nan=True), float(np.nanmax(abs(w - g)))


PROPERTIES: list[Property] = [Property("onnx_rewrite_edits", edit_case, check_rewrite_edits, 60)]


def test_seeds_rewrite_exactly() -> None:
    from edgelstm.targets.onnx.rewrite import rewrite_onnx

    for name, data in seeds().items():
        proto, report = rewrite_onnx(data)
        assert len(report.applied) == 2 and not report.refused, report.to_dict()
        want, got = _outputs(data, FEEDS[name]), _outputs(proto.SerializeToString(), FEEDS[name])
        for w, g in zip(want, got, strict=True):
            assert np.abs(w - g).max() <= 1e-5


@pytest.mark.parametrize("prop", [as_param(p) for p in PROPERTIES])
def test_fuzz_rewrite(prop: Property) -> None:
    run_property(prop)
