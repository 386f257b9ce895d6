"""Whole models to ONNX (exporter + edgelstm's rewrite) against the frameworks themselves.

PyTorch (torch.onnx, eval mode) and Keras 3 / tf-keras (tf2onnx) models with an LSTM between
other layers, random and trained-ish weights (a few optimizer steps on a learnable task):
float on onnxruntime <= 1e-5 vs the framework, the file holds edgelstm's LSTMs (metadata);
dynamic int8 within the hybrid error of the LSTM alone propagated through the head:
``|whole - framework| <= 2 * ||W_head||_inf * |edgelstm dynamic LSTM alone - framework LSTM|``
(a per-element error e on the LSTM output moves a linear head's output by at most
``||W||_inf * e``, the max absolute row sum; softmax only shrinks it; the factor 2 is the
front end's and the head's own int8 weights, measured <= 1.02 of the bound's half).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgelstm.ir.options import CompileOptions

ort = pytest.importorskip("onnxruntime")

TOL = 1e-5
FLOAT = CompileOptions(batch=None)
DYNAMIC = CompileOptions(batch=None, quantize="dynamic")


def _run(proto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _whole(proto) -> dict:
    meta = {p.key: p.value for p in proto.metadata_props}
    assert proto.producer_name == "edgelstm"
    return json.loads(meta["edgelstm.whole"])


def _lstm_lowered(proto) -> bool:
    """Every LSTM of the file is edgelstm's (a rewritten node or a spliced composite)."""
    whole = _whole(proto)
    return whole["rewritten"] + len(whole["spliced"]) >= 1 and not whole.get("kept_unchanged")


def _alone_error(model, x: np.ndarray, expected: np.ndarray) -> float:
    from edgelstm.targets.onnx import to_onnx

    proto = to_onnx(model, DYNAMIC)
    return float(np.abs(_run(proto, {proto.graph.input[0].name: x}) - expected).max())


# ---------------------------------------------------------------------------------------- torch


def _torch_models():
    import torch
    from _torch_models import Conv1dLstm, Crnn

    gen = torch.Generator().manual_seed(0)

    def seq_task(n: int, steps: int = 12):  # running mean of three channels
        x = torch.randn(n, 4, steps, generator=gen)
        t = torch.cumsum(x[:, :3], 2).transpose(1, 2) / torch.arange(1, steps + 1).view(1, -1, 1)
        return x, t

    def image_task(n: int, width: int = 12):  # column statistics, forward and backward
        x = torch.randn(n, 1, 8, width, generator=gen)
        col = x.mean(2)[:, 0]
        rev = col.flip(1).cumsum(1).flip(1)
        return x, torch.stack([col.cumsum(1), col, rev, 2 * col, -col], 2)

    return {
        "conv1d_lstm": (Conv1dLstm, seq_task),
        "conv1d_lstm_proj": (lambda: Conv1dLstm(proj=4), seq_task),
        "crnn_bilstm": (Crnn, image_task),
    }


def _train(torch, module, task, steps: int = 40) -> None:
    opt = torch.optim.Adam(module.parameters(), 1e-2)
    for _ in range(steps):
        x, t = task(32)
        loss = ((module(x) - t) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture(scope="module")
def torch_cases():
    """Per (model, weights): module, test input, its output, float and dynamic ONNX."""
    torch = pytest.importorskip("torch")
    from edgelstm.whole.torch_module import from_torch_module

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend with other jobs
    try:
        return _build_torch_cases(torch, from_torch_module)
    finally:
        torch.set_num_threads(threads)


def _build_torch_cases(torch, from_torch_module) -> dict:
    cases = {}
    for name, (make, task) in _torch_models().items():
        for weights in ("random", "trained"):
            module = make()
            if weights == "trained":
                _train(torch, module, task)
            module.eval()
            x, _ = task(6)
            seen: dict = {}
            hook = module.lstm.register_forward_hook(lambda m, i, o, s=seen: s.update(z=i[0]))
            with torch.no_grad():
                expected = module(x).numpy()
                z = seen["z"]
                lstm_out = module.lstm(z)[0].numpy()
            hook.remove()
            cases[name, weights] = {
                "module": module,
                "x": x.numpy(),
                "expected": expected,
                "z": z.numpy(),
                "lstm_out": lstm_out,
                "float": from_torch_module(module, x, FLOAT),
                "dynamic": from_torch_module(module, x, DYNAMIC),
            }
    return cases


TORCH_IDS = [
    (name, w)
    for name in ("conv1d_lstm", "conv1d_lstm_proj", "crnn_bilstm")
    for w in ("random", "trained")
]


@pytest.mark.torch
@pytest.mark.parametrize("case", TORCH_IDS, ids=["-".join(c) for c in TORCH_IDS])
def test_torch_module_float_exact(torch_cases, case) -> None:
    c = torch_cases[case]
    proto = c["float"]
    err = float(np.abs(_run(proto, {"input": c["x"]}) - c["expected"]).max())
    assert err <= TOL, err
    assert _lstm_lowered(proto)
    ops = {n.op_type for n in proto.graph.node}
    if case[0] == "conv1d_lstm_proj":  # no ONNX LSTM has a projection: edgelstm's composite
        assert "Scan" in ops and "LSTM" not in ops
        assert _whole(proto)["spliced"][0]["module"] == "lstm"
    else:
        assert "LSTM" in ops
        meta = {p.key: p.value for p in proto.metadata_props}
        assert json.loads(meta["edgelstm.rewrite"])["rewritten"]
    assert {"Conv", "MatMul"} <= ops  # the rest is torch's export, kept


@pytest.mark.torch
@pytest.mark.parametrize("case", TORCH_IDS, ids=["-".join(c) for c in TORCH_IDS])
def test_torch_module_dynamic_within_hybrid_error(torch_cases, case) -> None:
    from edgelstm import from_torch

    c = torch_cases[case]
    module = c["module"]
    err = float(np.abs(_run(c["dynamic"], {"input": c["x"]}) - c["expected"]).max())
    alone = _alone_error(from_torch(module.lstm), c["z"], c["lstm_out"])
    head = float(np.abs(module.fc.weight.detach().numpy()).sum(1).max())
    assert 0 < err <= 2 * head * alone, (err, head, alone)
    ops = {n.op_type for n in c["dynamic"].graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeLSTM" in ops
    assert _whole(c["dynamic"])["quantize"] == "dynamic"


# ---------------------------------------------------------------------------------------- keras


def _keras_models(keras):
    layers = keras.layers

    def text():
        tokens = keras.Input((None,), dtype="int32", name="tokens")
        x = layers.Embedding(40, 8)(tokens)
        x = layers.LSTM(16, name="lstm")(x)
        return keras.Model(tokens, layers.Dense(4, activation="softmax", name="probs")(x))

    def bidi():
        feats = keras.Input((9, 5), name="feats")
        x = layers.Dense(6, activation="relu")(feats)
        x = layers.Bidirectional(layers.LSTM(8, return_sequences=True), name="lstm")(x)
        return keras.Model(feats, layers.Dense(3, name="head")(x))

    return {"embedding_lstm_dense": text, "dense_bilstm_dense": bidi}


def _keras_inputs(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if name == "embedding_lstm_dense":
        return rng.integers(0, 40, (n, 11)).astype(np.int32)
    return rng.normal(size=(n, 9, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def keras_cases():
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    import keras

    from edgelstm.whole.keras_onnx import keras_to_onnx

    flavors = {"keras3": keras}
    try:
        import tf_keras

        flavors["tf_keras"] = tf_keras
    except ImportError:  # pragma: no cover - tf-keras is in the dev extra
        pass
    rng = np.random.default_rng(0)
    cases = {}
    for flavor, module in flavors.items():
        module.utils.set_random_seed(0)
        for name, make in _keras_models(module).items():
            model = make()
            if flavor == "keras3" and name == "embedding_lstm_dense":  # trained-ish weights
                model.compile("adam", "sparse_categorical_crossentropy")
                for _ in range(15):
                    ids = _keras_inputs(name, 32, rng)
                    model.train_on_batch(ids, ids[:, -1] % 4)  # class of the last token
            x = _keras_inputs(name, 5, rng)
            lstm = model.get_layer("lstm")
            z = module.Model(model.inputs[0], lstm.input)(x)
            cases[flavor, name] = {
                "model": model,
                "x": x,
                "expected": np.asarray(model(x)),
                "z": np.asarray(z),
                "lstm_out": np.asarray(lstm(z)),
                "float": keras_to_onnx(model, FLOAT),
                "dynamic": keras_to_onnx(model, DYNAMIC),
            }
    return cases


KERAS_IDS = [
    (f, n) for f in ("keras3", "tf_keras") for n in ("embedding_lstm_dense", "dense_bilstm_dense")
]


def _keras_case(keras_cases, case):
    if case not in keras_cases:
        pytest.skip("tf-keras is not installed")
    return keras_cases[case]


@pytest.mark.tf
@pytest.mark.parametrize("case", KERAS_IDS, ids=["-".join(c) for c in KERAS_IDS])
def test_keras_model_float_exact(keras_cases, case) -> None:
    c = _keras_case(keras_cases, case)
    proto = c["float"]
    inp = proto.graph.input[0]
    assert inp.name in ("tokens", "feats")
    if case[1] == "embedding_lstm_dense":  # token ids stay int32
        assert inp.type.tensor_type.elem_type == 6
    err = float(np.abs(_run(proto, {inp.name: c["x"]}) - c["expected"]).max())
    assert err <= TOL, err
    assert _lstm_lowered(proto) and _whole(proto)["exporter"].startswith("tf2onnx")
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["edgelstm.rewrite"])["rewritten"]


@pytest.mark.tf
@pytest.mark.parametrize("case", KERAS_IDS, ids=["-".join(c) for c in KERAS_IDS])
def test_keras_model_dynamic_within_hybrid_error(keras_cases, case) -> None:
    from edgelstm import from_keras

    c = _keras_case(keras_cases, case)
    model = c["model"]
    proto = c["dynamic"]
    err = float(np.abs(_run(proto, {proto.graph.input[0].name: c["x"]}) - c["expected"]).max())
    alone = _alone_error(from_keras(model.get_layer("lstm")), c["z"], c["lstm_out"])
    kernel = np.asarray(model.layers[-1].get_weights()[0])  # Dense kernel [in, out]
    head = float(np.abs(kernel).sum(0).max())
    assert 0 < err <= 2 * head * alone, (err, head, alone)
    assert "DynamicQuantizeLSTM" in {n.op_type for n in proto.graph.node}


@pytest.mark.tf
def test_keras_calibration_measures_the_scheme_on_its_token_ids(keras_cases) -> None:
    """``calibration`` = the Keras model's own batched inputs ([N, T] token ids): the ONNX
    dynamic scheme is measured on them (one feed per sample), not on seeded noise, and the
    file stays within the same bound against Keras."""
    from edgelstm.whole.keras_onnx import keras_to_onnx

    c = _keras_case(keras_cases, ("keras3", "embedding_lstm_dense"))
    ids = _keras_inputs("embedding_lstm_dense", 12, np.random.default_rng(3))
    options = CompileOptions(batch=None, quantize="dynamic", calibration=ids)
    proto = keras_to_onnx(c["model"], options)
    record = json.loads({p.key: p.value for p in proto.metadata_props}["edgelstm.quantize.scheme"])
    assert record["measured_on"].startswith("8 given feed(s)"), record["measured_on"]
    name = proto.graph.input[0].name
    calibrated = float(np.abs(_run(proto, {name: c["x"]}) - c["expected"]).max())
    plain = float(np.abs(_run(c["dynamic"], {name: c["x"]}) - c["expected"]).max())
    print(f"\nmax error vs Keras: calibrated {calibrated:.2e}, seeded {plain:.2e}")
    assert calibrated <= 2 * plain + 1e-6
