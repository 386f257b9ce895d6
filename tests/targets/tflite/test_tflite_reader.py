"""Reading .tflite files back: exact float round trips, graph inference without metadata,
and refusal of files that are not fused-LSTM TFLite models."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest
from _tflite_helpers import seeded

from edgelstm import DenseHead, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, from_tflite
from edgelstm.errors import ModelFileError, UnsupportedError
from edgelstm.importers.load import load_source
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.tflite import save_tflite, to_tflite
from edgelstm.targets.tflite.builder import GraphBuilder
from edgelstm.targets.tflite.reader import model_from_bytes
from edgelstm.targets.tflite.schema import FILE_IDENTIFIER, BuiltinOperator, load_model


def _models() -> dict[str, LSTMModel]:
    rng = seeded("reader")
    a = LSTMSpec(4, 6, 3, peephole=True, projection=True, proj_clip=0.7, cell_clip=1.1)
    b = LSTMSpec(6, 5, cifg=True, layer_norm=True, activation="relu6")
    c = LSTMSpec(3, 4, projection=True, projection_bias=True, activation="relu_n1_to_1")
    w = LSTMWeights.random
    head = DenseHead(rng.normal(size=(2, 5)), rng.normal(size=2), "softmax")
    return {
        "single": LSTMModel.of(w(a, 1)),
        "stacked_head": LSTMModel(
            (LSTMLayer(w(a, 1)), LSTMLayer(w(LSTMSpec(3, 5, peephole=True), 2))), head=head
        ),
        "bidi_last_state": LSTMModel(
            (LSTMLayer(w(a, 1), w(a, 2)), LSTMLayer(w(b, 3), w(b, 4))),
            return_sequences=False,
            return_state=True,
            provenance={"forget_bias": 1.0, "source": "unit"},
        ),
        "go_backwards_tm": LSTMModel(
            (LSTMLayer(w(c, 5), go_backwards=True),), time_major=True, stateful=True
        ),
    }


def _f32_clips(w: LSTMWeights) -> LSTMWeights:
    """Clips as a file without metadata holds them (float32)."""
    return w.replace(
        cell_clip=float(np.float32(w.spec.cell_clip)), proj_clip=float(np.float32(w.spec.proj_clip))
    )


def _same(a: LSTMModel, b: LSTMModel, f32_clips: bool = False) -> None:
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.go_backwards == lb.go_backwards
        assert len(la.directions) == len(lb.directions)
        for wa, wb in zip(la.directions, lb.directions, strict=True):
            if f32_clips:
                wa = _f32_clips(wa)  # noqa: PLW2901
            assert wa.allclose(wb, atol=0.0), (wa.spec, wb.spec)
    for flag in ("return_sequences", "return_state", "time_major"):
        assert getattr(a, flag) == getattr(b, flag), flag
    assert (a.head is None) == (b.head is None)
    if a.head is not None:
        assert np.array_equal(a.head.kernel, b.head.kernel)
        assert np.array_equal(a.head.bias, b.head.bias)
        assert a.head.activation == b.head.activation


@pytest.mark.parametrize("name", sorted(_models()))
def test_float_round_trip_is_exact(name, tmp_path):
    model = _models()[name]
    path = tmp_path / "m.tflite"
    options = CompileOptions(batch=None)
    save_tflite(model, path, options)
    back = from_tflite(path)
    _same(model, back)
    assert back.stateful == model.stateful
    assert dict(back.provenance) == dict(model.provenance)
    assert to_tflite(back, options) == path.read_bytes()  # same model, same bytes
    assert load_source(path).describe() == model.describe()


def _without_metadata(data: bytes) -> bytes:
    m = load_model(data)
    m.metadata = None
    fb = flatbuffers.Builder(1 << 16)
    fb.Finish(m.Pack(fb), file_identifier=FILE_IDENTIFIER)
    return bytes(fb.Output())


@pytest.mark.parametrize("name", sorted(_models()))
def test_structure_inferred_without_metadata(name):
    model = _models()[name]
    back = model_from_bytes(_without_metadata(to_tflite(model, CompileOptions(batch=2))))
    _same(model, back, f32_clips=True)
    assert back.provenance["source"] == "tflite"


def test_not_tflite_and_corrupted_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        from_tflite(tmp_path / "missing.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="TFL3"):
        from_tflite(bad)
    data = to_tflite(_models()["single"])
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError):
        from_tflite(bad)


def test_file_without_lstm_is_refused():
    g = GraphBuilder()
    x = g.add_tensor("x", [1, 4])
    w = g.add_constant("w", np.ones((2, 4), np.float32))
    y = g.add_tensor("y", [1, 2])
    g.add_operator(BuiltinOperator.FULLY_CONNECTED, [x, w, -1], [y])
    g.add_input("x", x)
    g.add_output("y", y)
    with pytest.raises(UnsupportedError, match="no UNIDIRECTIONAL_SEQUENCE_LSTM"):
        model_from_bytes(g.finish())


def test_bad_metadata_is_a_file_error():
    data = to_tflite(_models()["single"])
    m = load_model(data)
    entry = next(e for e in m.metadata if e.name == b"edgelstm")
    m.buffers[entry.buffer].data = np.frombuffer(b"{not json", np.uint8)
    fb = flatbuffers.Builder(1 << 16)
    fb.Finish(m.Pack(fb), file_identifier=FILE_IDENTIFIER)
    with pytest.raises(ModelFileError, match="metadata"):
        model_from_bytes(bytes(fb.Output()))
