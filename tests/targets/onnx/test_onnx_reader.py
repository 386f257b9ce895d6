"""edgelstm ONNX files read back (edgelstm.targets.onnx.reader): bit-exact weights, every structure.

Oracle: the model that was exported. Weights must come back identical (the file's digests
are checked too), and the float64 reference of the read model must equal the original's.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import numpy_helper

from edgelstm import (
    DenseHead,
    EdgeLSTMError,
    LSTMLayer,
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    ModelFileError,
    from_onnx,
    reference_model,
    to_onnx,
)
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.onnx.reader import is_edgelstm_onnx

FEATURES = list(itertools.product([False, True], repeat=4))  # cifg, peephole, proj, ln


def _spec(cifg: bool, peephole: bool, projection: bool, layer_norm: bool, **kw) -> LSTMSpec:
    return LSTMSpec(4, 6, 3 if projection else None, cifg=cifg, peephole=peephole,
                    projection=projection, projection_bias=projection, layer_norm=layer_norm,
                    **kw)  # fmt: skip


def _same(a: LSTMModel, b: LSTMModel) -> None:
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert (la.go_backwards, la.reverse) == (lb.go_backwards, lb.reverse)
        assert len(la.directions) == len(lb.directions)
        for wa, wb in zip(la.directions, lb.directions, strict=True):
            assert wa.spec == wb.spec
            assert wa.allclose(wb, atol=0.0)
    assert (a.return_sequences, a.return_state, a.time_major) == (
        b.return_sequences, b.return_state, b.time_major)  # fmt: skip
    assert (a.head is None) == (b.head is None)
    if a.head is not None:
        assert a.head.activation == b.head.activation
        np.testing.assert_array_equal(a.head.kernel, b.head.kernel)
        np.testing.assert_array_equal(a.head.bias, b.head.bias)


@pytest.mark.parametrize(("cifg", "peephole", "projection", "layer_norm"), FEATURES)
def test_every_feature_reads_back_exactly(cifg, peephole, projection, layer_norm):
    clips = {"cell_clip": 0.7, "proj_clip": 0.4 if projection else 0.0}
    spec = _spec(cifg, peephole, projection, layer_norm, **clips)
    seed = FEATURES.index((cifg, peephole, projection, layer_norm))
    model = LSTMModel.of(LSTMWeights.random(spec, seed=seed))
    back = from_onnx(to_onnx(model, CompileOptions(batch=2)))
    _same(model, back)
    x = np.random.default_rng(0).normal(size=(2, 5, 4))
    assert np.array_equal(reference_model(back, x).output, reference_model(model, x).output)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear", "relu6"])
def test_activations_fused_and_composite(activation):
    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(3, 5, peephole=True, activation=activation)))
    for composite in (False, True):
        proto = to_onnx(model, CompileOptions(batch=1), force_composite=composite)
        _same(model, from_onnx(proto))


def test_structures_stacked_bidirectional_head_and_layouts():
    rng = np.random.default_rng(1)

    def w(spec: LSTMSpec) -> LSTMWeights:
        return LSTMWeights.random(spec, seed=int(rng.integers(1 << 30)))

    layers = (
        LSTMLayer(w(LSTMSpec(4, 5, peephole=True)), w(LSTMSpec(4, 5, peephole=True))),  # fused
        LSTMLayer(w(LSTMSpec(10, 6, 3, projection=True)), w(LSTMSpec(10, 4, cifg=True))),
        LSTMLayer(w(LSTMSpec(7, 3, layer_norm=True)), go_backwards=True),
        LSTMLayer(w(LSTMSpec(3, 3)), reverse=True),
    )
    head = DenseHead(rng.normal(size=(2, 3)).astype(np.float32), np.ones(2, np.float32), "softmax")
    for seqs, time_major, batch in [(True, False, 1), (False, True, None), (True, True, 3)]:
        model = LSTMModel(layers, head=head, return_sequences=seqs, time_major=time_major)
        proto = to_onnx(model, CompileOptions(batch=batch, seq_len=4))
        assert is_edgelstm_onnx(proto)
        back = from_onnx(proto)
        _same(model, back)
        x = rng.normal(size=(4, batch or 2, 4) if time_major else (batch or 2, 4, 4))
        assert np.array_equal(reference_model(back, x).output, reference_model(model, x).output)


def test_dynamic_int8_file_reads_back_dequantized():
    spec = LSTMSpec(4, 8, 4, projection=True, peephole=True)  # composite: MatMulInteger
    for s in (spec, LSTMSpec(4, 8)):  # and fused: DynamicQuantizeLSTM
        model = LSTMModel.of(LSTMWeights.random(s, seed=2))
        back = from_onnx(to_onnx(model, CompileOptions(batch=1, quantize="dynamic")))
        assert "dequantized" in back.provenance
        for name, value in model.layers[0].forward.tensors.items():
            got = back.layers[0].forward[name]
            if name.endswith(("_weights",)) and value.ndim == 2:  # int8, scale <= max / 64
                bound = np.abs(value).max() / 64 / 2 + 1e-7
                assert np.abs(got - value).max() <= bound, name
            else:  # biases, peepholes stay float
                np.testing.assert_array_equal(got, value)


def test_edited_weights_are_refused():
    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(3, 4), seed=3))
    proto = to_onnx(model, CompileOptions(batch=1))
    init = next(i for i in proto.graph.initializer if i.name == "layer0.R")
    values = numpy_helper.to_array(init).copy()
    values[0, 0, 0] += 0.5
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    with pytest.raises(ModelFileError, match="digest"):
        from_onnx(proto)


def test_damaged_metadata_is_a_model_file_error():
    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(3, 4), seed=4))
    deep = "[" * 100_000 + "]" * 100_000  # found by tools/fuzz_long.py: RecursionError
    for key, value in [("edgelstm.spec", "{not json"), ("edgelstm.spec", "[{}]"),
                       ("edgelstm.emit", "[1]"), ("edgelstm.spec", deep)]:  # fmt: skip
        proto = to_onnx(model, CompileOptions(batch=1))
        entry = next(p for p in proto.metadata_props if p.key == key)
        entry.value = value
        with pytest.raises(EdgeLSTMError):
            from_onnx(proto)


def test_compile_an_edgelstm_composite_onnx_to_tflite(tmp_path):
    """A composite (Scan) ONNX file was a dead end before: now it is a source like any other."""
    from edgelstm import save_onnx
    from edgelstm.importers.load import load_source

    spec = LSTMSpec(4, 6, 3, projection=True, cell_clip=1.0, layer_norm=True)
    model = LSTMModel.of(LSTMWeights.random(spec, seed=5))
    save_onnx(model, tmp_path / "m.onnx", CompileOptions(batch=1))
    loaded = load_source(tmp_path / "m.onnx")
    _same(model, loaded)
