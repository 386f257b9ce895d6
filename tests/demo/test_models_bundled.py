"""The bundled data set and trained models: provenance, hashes, and recorded results.

Independent of the training scripts (and of torch): the data file is checked against the
official UCI split, each model's weights hash is recomputed from the file, and the float64
reference must reproduce the accuracy / bits per character recorded at training time.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from _paths import MODELS

from edgelstm import LSTMModel, from_npz, reference_model

DATA = MODELS / "japanese_vowels.npz"
JV_MODELS = ["japanese_vowels_lstm.npz", "japanese_vowels_cifg_ln_lstm.npz"]
CHAR_LM = MODELS / "char_lm_lstm.npz"
# UCI: 30 utterances per speaker for training; the test set's per-speaker counts.
TEST_PER_SPEAKER = [31, 35, 88, 44, 29, 24, 40, 50, 29]


def weights_digest(model: LSTMModel) -> str:
    """The tools' ``weights_sha256`` (see models/README.md), recomputed independently."""
    h = hashlib.sha256()
    for k, layer in enumerate(model.layers):
        for d, weights in enumerate(layer.directions):
            h.update(f"layer{k}.{d}:{weights.digest()};".encode())
    if model.head is not None:
        h.update(f"head:{model.head.activation};".encode())
        for tensor in (model.head.kernel, model.head.bias):
            arr = np.ascontiguousarray(tensor, dtype="<f4")
            h.update(f"{arr.shape};".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    with np.load(DATA, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_dataset_is_the_official_split(data):
    assert data["x_train"].shape == (270, 29, 12)
    assert data["x_test"].shape == (370, 29, 12)
    assert data["x_train"].dtype == data["x_test"].dtype == np.float32
    assert np.bincount(data["y_train"]).tolist() == [30] * 9
    assert np.bincount(data["y_test"]).tolist() == TEST_PER_SPEAKER
    for split in ("train", "test"):
        lens = data[f"len_{split}"]
        assert lens.min() >= 7 and lens.max() <= 29
        x = data[f"x_{split}"]
        steps = np.arange(29)[None, :]
        pad = steps >= lens[:, None]
        assert not np.any(x[pad]), "padding must be zeros at the end"
        assert np.all(np.any(x[~pad] != 0, axis=-1)), "no all-zero real frame"
    assert data["len_test"].max() == 29  # the longest utterance sets the pad length


def test_dataset_normalization_uses_train_frames_only(data):
    lens = data["len_train"]
    frames = np.concatenate([data["x_train"][k, :n] for k, n in enumerate(lens)]).astype(float)
    np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=1e-5)
    assert np.all(data["norm_std"] > 0)


def test_dataset_provenance(data):
    meta = json.loads(str(data["provenance"]))
    assert meta["builder"] == "tools/build_japanese_vowels.py"
    assert "CC BY 4.0" in meta["license"]
    assert meta["doi"] == "10.24432/C5NS47"
    for key in ("train_ts_sha256", "test_ts_sha256", "wheel_sha256"):
        assert len(meta[key]) == 64


@pytest.mark.parametrize("name", JV_MODELS)
def test_japanese_vowels_model_reproduces_recorded_accuracy(name, data):
    model = from_npz(MODELS / name)
    prov = model.provenance
    assert prov["source"] == "tools/train_japanese_vowels.py"
    assert weights_digest(model) == prov["weights_sha256"]
    assert prov["dataset_sha256"] == hashlib.sha256(DATA.read_bytes()).hexdigest()
    assert not model.return_sequences
    assert model.head is not None and model.head.activation == "softmax"
    assert model.head.units == 9
    spec = model.layers[0].forward.spec
    assert spec.cell_clip > 0
    if prov["variant"] == "peephole_projection":
        assert spec.peephole and spec.projection and spec.n_output < spec.n_cell
    else:
        assert spec.cifg and spec.layer_norm
    np.testing.assert_array_equal(np.asarray(prov["norm_mean"], np.float32), data["norm_mean"])

    pred = reference_model(model, data["x_test"]).output.argmax(-1)
    correct = int((pred == data["y_test"]).sum())
    assert correct == prov["test_correct"]
    assert correct / len(pred) >= 0.95


def test_char_lm_model():
    model = from_npz(CHAR_LM)
    prov = model.provenance
    assert prov["source"] == "tools/train_char_lm.py"
    assert weights_digest(model) == prov["weights_sha256"]
    assert CHAR_LM.stat().st_size < 1_000_000
    vocab = prov["vocab"]
    assert len(vocab) == len(set(vocab)) == model.n_input == model.head.units
    assert model.return_sequences and model.head.activation == "softmax"
    spec = model.layers[0].forward.spec
    assert spec.projection and spec.n_output < spec.n_cell
    assert prov["val_bpc"] < 2.5


def test_char_lm_reproduces_recorded_bpc():
    """Re-score the validation prefix; the text ships with Python, so it must be the same one."""
    model = from_npz(CHAR_LM)
    prov = model.provenance
    from pydoc_data import topics

    text = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    if hashlib.sha256(text.encode()).hexdigest() != prov["text_sha256"]:
        pytest.skip(f"pydoc_data.topics differs from Python {prov['python']}'s")
    cut = int(len(text) * 0.9)
    index = {ch: k for k, ch in enumerate(prov["vocab"])}
    ids = np.array([index.get(ch, 0) for ch in text[cut:][: prov["val_prefix_chars"]]])
    x = np.eye(len(index))[ids[:-1]][None]
    probs = reference_model(model, x).output[0]
    bpc = -np.mean(np.log2(probs[np.arange(len(ids) - 1), ids[1:]]))
    assert bpc == pytest.approx(prov["val_prefix_bpc"], abs=1e-9)


@pytest.mark.parametrize("name", [*JV_MODELS, CHAR_LM.name])
def test_models_readme_lists_the_weights_hash(name):
    prov = from_npz(MODELS / name).provenance
    assert prov["weights_sha256"] in (MODELS / "README.md").read_text()
