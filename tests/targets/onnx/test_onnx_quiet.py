"""Our .onnx files open silently in onnxruntime and keep no state between runs.

Oracle: onnxruntime itself (its stderr at the default log level, in a fresh process that
does nothing but create an ``InferenceSession``) and the float64 reference. Older files
(initial states as inputs backed by initializers) are the negative control: onnxruntime
warns about them, and edgelstm still reads and runs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from _onnx_helpers import assert_matches, run
from onnx import numpy_helper

from edgelstm import LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, reference_model, save_onnx
from edgelstm.ir.options import CompileOptions, OnnxOptions
from edgelstm.targets.onnx import to_onnx
from edgelstm.targets.onnx.reader import model_from_edgelstm_onnx

FUSED = LSTMSpec(4, 5, peephole=True)
COMPOSITE = LSTMSpec(4, 6, 3, projection=True, cell_clip=1.0)
STREAMING = OnnxOptions(state_inputs=True)


def _fused() -> LSTMModel:
    return LSTMModel.of(LSTMWeights.random(FUSED, seed=1))


def _composite() -> LSTMModel:
    return LSTMModel.of(LSTMWeights.random(COMPOSITE, seed=2))


def _bidi() -> LSTMModel:
    """A fused bidirectional layer, then a composite layer on its 10 features."""
    fwd, bwd = (LSTMWeights.random(FUSED, seed=s) for s in (3, 4))
    top = LSTMWeights.random(LSTMSpec(10, 6, 3, projection=True, cell_clip=1.0), seed=5)
    return LSTMModel((LSTMLayer(fwd, bwd), LSTMLayer(top)))


KINDS = {
    "fused-float": (_fused, CompileOptions()),
    "fused-float-dynamic-batch": (_fused, CompileOptions(batch=None)),
    "fused-dynamic-int8": (_fused, CompileOptions(batch=None, quantize="dynamic")),
    "composite": (_composite, CompileOptions()),
    "composite-dynamic-batch": (_composite, CompileOptions(batch=None)),
    "composite-dynamic-int8": (_composite, CompileOptions(batch=None, quantize="dynamic")),
    "bidirectional-stacked": (_bidi, CompileOptions(batch=None)),
    "streaming": (_bidi, CompileOptions(batch=None, onnx=STREAMING)),
    "stateful": (lambda: LSTMModel(_composite().layers, stateful=True), CompileOptions(batch=2)),
    "sequence-lens": (
        _fused,
        CompileOptions(batch=None, onnx=OnnxOptions(state_inputs=True, sequence_lens=True)),
    ),
}

OPEN_ONLY = "import sys, onnxruntime as ort; ort.InferenceSession(sys.argv[1])"


def _open_stderr(path: Path) -> str:
    """stderr of a fresh process that only opens ``path`` with default SessionOptions."""
    done = subprocess.run(
        [sys.executable, "-c", OPEN_ONLY, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def _old_form(model: LSTMModel, batch: int) -> onnx.ModelProto:
    """A file as edgelstm wrote it before: state inputs with zero initializer defaults."""
    proto = to_onnx(model, CompileOptions(batch=batch, onnx=STREAMING))
    for info in proto.graph.input[1:]:
        width = info.type.tensor_type.shape.dim[1].dim_value
        zeros = np.zeros((batch, width), np.float32)
        proto.graph.initializer.append(numpy_helper.from_array(zeros, info.name))
    return proto


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_onnxruntime_opens_our_files_silently(kind: str, tmp_path: Path) -> None:
    make, options = KINDS[kind]
    path = tmp_path / f"{kind}.onnx"
    save_onnx(make(), path, options)
    assert _open_stderr(path) == ""


def test_old_files_warn_and_still_read_and_run(tmp_path: Path) -> None:
    model = _bidi()
    old = _old_form(model, batch=2)
    path = tmp_path / "old.onnx"
    path.write_bytes(old.SerializeToString())
    assert "appears in graph inputs" in _open_stderr(path)  # the control: the check can fail
    back = model_from_edgelstm_onnx(old, "old.onnx")
    for la, lb in zip(model.layers, back.layers, strict=True):
        for wa, wb in zip(la.directions, lb.directions, strict=True):
            assert wa.allclose(wb, atol=0.0)
    x = np.random.default_rng(0).normal(size=(2, 5, 4))
    assert_matches(run(old, x), reference_model(model, x), model)
    rng = np.random.default_rng(1)
    states = [
        [(rng.normal(size=(2, w.spec.n_output)), rng.normal(size=(2, w.spec.n_cell)))
         for w in layer.directions]
        for layer in model.layers
    ]  # fmt: skip
    assert_matches(run(old, x, states), reference_model(model, x, states), model)


@pytest.mark.parametrize(
    "options", [CompileOptions(batch=None), CompileOptions(batch=None, onnx=STREAMING)]
)
def test_both_forms_read_back(options: CompileOptions) -> None:
    model = _bidi()
    back = model_from_edgelstm_onnx(to_onnx(model, options), "m.onnx")
    for la, lb in zip(model.layers, back.layers, strict=True):
        for wa, wb in zip(la.directions, lb.directions, strict=True):
            assert wa.allclose(wb, atol=0.0)


@pytest.mark.parametrize("make", [_fused, _composite, _bidi], ids=["fused", "composite", "bidi"])
def test_stateless_file_same_result_on_every_run(make) -> None:
    """One session, many runs (the way apps use it): every run equals the reference."""
    import onnxruntime as ort

    model = make()
    proto = to_onnx(model, CompileOptions(batch=None))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    x, other = rng.normal(size=(2, 2, 6, 4)).astype(np.float32)
    first = session.run(None, {"x": x})
    for feed in (x, other, x, other, x):
        outs = session.run(None, {"x": feed})
        if feed is x:
            for a, b in zip(first, outs, strict=True):
                np.testing.assert_array_equal(a, b)
    assert_matches(outs, reference_model(model, x.astype(np.float64)), model)
