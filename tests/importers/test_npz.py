"""The .npz weights format: exact keys, round trips, and every kind of bad file."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest

from edgelstm import (
    DenseHead,
    LSTMLayer,
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    ModelFileError,
    SpecError,
    WeightsError,
    from_npz,
    save_npz,
)
from edgelstm.importers.npz import to_npz_arrays


def test_single_layer_keys_are_exactly_the_role_names(tmp_path):
    spec = LSTMSpec(3, 4, 2, cifg=True, peephole=True, projection=True, cell_clip=3.0)
    w = LSTMWeights.random(spec, seed=2)
    path = tmp_path / "w.npz"
    save_npz(w, path)
    with np.load(path) as f:
        keys = set(f.files)
        assert f["input_to_forget_weights"].dtype == np.float32
        assert f["input_to_forget_weights"].shape == (4, 3)
        assert float(f["cell_clip"]) == 3.0
        assert str(f["activation"]) == "tanh"
    assert keys == {
        "input_to_forget_weights",
        "input_to_cell_weights",
        "input_to_output_weights",
        "recurrent_to_forget_weights",
        "recurrent_to_cell_weights",
        "recurrent_to_output_weights",
        "cell_to_forget_weights",
        "cell_to_output_weights",
        "forget_gate_bias",
        "cell_gate_bias",
        "output_gate_bias",
        "projection_weights",
        "cell_clip",
        "proj_clip",
        "activation",
    }
    back = from_npz(path)
    assert back.is_single
    assert back.layers[0].forward.allclose(w)


def test_hand_written_file_with_defaults(tmp_path):
    """A file written by hand with np.savez (no scalars) loads with tanh and no clips."""
    rng = np.random.default_rng(0)
    arrays = {
        f"input_to_{g}_weights": rng.normal(size=(5, 2))
        for g in ("input", "forget", "cell", "output")
    }
    arrays |= {
        f"recurrent_to_{g}_weights": rng.normal(size=(5, 5))
        for g in ("input", "forget", "cell", "output")
    }
    arrays |= {f"{g}_gate_bias": rng.normal(size=5) for g in ("input", "forget", "cell", "output")}
    np.savez(tmp_path / "hand.npz", **arrays)
    spec = from_npz(tmp_path / "hand.npz").layers[0].forward.spec
    assert spec == LSTMSpec(2, 5)


def test_model_round_trip_with_prefixes(tmp_path):
    a = LSTMWeights.random(LSTMSpec(3, 4, peephole=True), seed=1)
    b = LSTMWeights.random(LSTMSpec(3, 4, cifg=True), seed=2)
    c = LSTMWeights.random(
        LSTMSpec(8, 6, 2, projection=True, projection_bias=True, proj_clip=1.0), seed=3
    )
    d = LSTMWeights.random(LSTMSpec(2, 3), seed=4)
    head = DenseHead(np.ones((5, 3)), np.arange(5.0), "softmax")
    model = LSTMModel(
        (LSTMLayer(a, b), LSTMLayer(c, go_backwards=True), LSTMLayer(d, reverse=True)),
        head=head,
        return_sequences=False,
        provenance={"source": "test", "forget_bias_folded": 1.0},
    )
    path = tmp_path / "m.npz"
    save_npz(model, path)
    with np.load(path) as f:
        assert "layer0.backward.input_to_forget_weights" in f.files
        assert "layer1.projection_bias" in f.files
    back = from_npz(path)
    assert back.layers[0].forward.allclose(a)
    assert back.layers[0].backward.allclose(b)
    assert back.layers[1].forward.allclose(c) and back.layers[1].go_backwards
    assert back.layers[2].reverse and not back.layers[2].go_backwards
    assert back.head.activation == "softmax"
    np.testing.assert_array_equal(back.head.bias, head.bias)
    assert back.return_sequences is False
    assert dict(back.provenance) == {"source": "test", "forget_bias_folded": 1.0}


def _write(path, arrays):
    np.savez(path, **arrays)
    return path


def _good():
    return to_npz_arrays(LSTMWeights.random(LSTMSpec(3, 4), seed=0))


def test_pickled_npz_is_never_unpickled(tmp_path):
    arrays = _good()
    arrays["payload"] = np.array([{"evil": 1}], dtype=object)
    path = tmp_path / "p.npz"
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="pickle"):
        from_npz(path)


def test_pickle_file_renamed_npz(tmp_path):
    path = tmp_path / "p.npz"
    path.write_bytes(pickle.dumps({"input_to_forget_weights": np.zeros((4, 3))}))
    with pytest.raises(ModelFileError, match=r"not an \.npz"):
        from_npz(path)


@pytest.mark.parametrize("cut", [10, 100, 0.5, -30])
def test_truncated_npz(tmp_path, cut):
    full = tmp_path / "full.npz"
    _write(full, _good())
    data = full.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else cut
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[:n])
    with pytest.raises(ModelFileError):
        from_npz(bad)


def test_empty_missing_and_random_files(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        from_npz(tmp_path / "empty.npz")
    with pytest.raises(ModelFileError, match="not found"):
        from_npz(tmp_path / "nope.npz")
    (tmp_path / "rand.npz").write_bytes(b"PK" + np.random.default_rng(0).bytes(500))
    with pytest.raises(ModelFileError):
        from_npz(tmp_path / "rand.npz")


def test_corrupted_member_crc(tmp_path):
    buf = io.BytesIO()
    np.savez(buf, **_good())
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.infolist()[0]
    # Local header: 30 fixed bytes, then name and extra field whose lengths sit at 26 and 28.
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len + info.file_size - 4  # last floats
    data[start] ^= 0xFF
    path = tmp_path / "crc.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        from_npz(path)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (
            {"forget_gate_bias": np.zeros(5)},
            WeightsError,
            r"forget_gate_bias: expected shape \[4\]",
        ),
        ({"cell_clip": np.array(-1.0)}, SpecError, "cell_clip"),
        ({"activation": np.array("gelu")}, SpecError, "activation"),
        ({"activation": np.array(3)}, WeightsError, "activation: expected a string"),
        ({"cell_clip": np.array([1.0, 2.0])}, WeightsError, "cell_clip: expected a 0-d"),
        ({"mystery": np.zeros(1)}, WeightsError, "unknown key"),
        ({"output_gate_bias": np.array([0, np.nan, 0, 0])}, WeightsError, "finite"),
    ],
)
def test_bad_content(tmp_path, change, error, match):
    arrays = _good() | change
    with pytest.raises(error, match=match):
        from_npz(_write(tmp_path / "x.npz", arrays))


def test_missing_required_and_half_sets(tmp_path):
    arrays = _good()
    del arrays["recurrent_to_cell_weights"]
    with pytest.raises(WeightsError, match="recurrent_to_cell_weights"):
        from_npz(_write(tmp_path / "a.npz", arrays))
    arrays = _good()
    del arrays["input_gate_bias"]  # half a CIFG
    with pytest.raises(WeightsError, match="input_gate_bias"):
        from_npz(_write(tmp_path / "b.npz", arrays))
    arrays = _good() | {"cell_to_forget_weights": np.zeros(4)}  # half a peephole set
    with pytest.raises(WeightsError, match="cell_to_input_weights"):
        from_npz(_write(tmp_path / "c.npz", arrays))


def test_save_is_atomic_and_refuses_missing_directory(tmp_path):
    w = LSTMWeights.random(LSTMSpec(3, 4))
    with pytest.raises(ModelFileError, match="does not exist"):
        save_npz(w, tmp_path / "missing" / "w.npz")
    target = tmp_path / "w.npz"
    target.write_bytes(b"old")
    save_npz(w, target)
    assert target.read_bytes()[:2] == b"PK"
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]
