"""The readers against independent oracles, not against our own writers.

* ``.npz``: files written here by hand with numpy, key by key as README's format table says,
  from a PyTorch ``nn.LSTM`` (projection, stacked, bidirectional) and a TF v1 ``LSTMCell``
  (peepholes, clips, projection, forget bias): ``from_npz`` + the float64 reference must
  reproduce the framework's own forward pass.
* edgelstm's ONNX files: what ``from_onnx`` reads back must compute what onnxruntime computes
  when it runs the very same file (fused and composite graphs, float and dynamic int8).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm import (
    LSTMLayer,
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    from_npz,
    from_onnx,
    reference_model,
    save_onnx,
)
from edgelstm.ir.options import CompileOptions

TOL = 1e-5
TORCH_GATES = ("input", "forget", "cell", "output")  # nn.LSTM's row blocks, i f g o
TF_GATES = ("input", "cell", "forget", "output")  # LSTMCell's kernel columns, i j f o


def _torch_direction(lstm, layer: int, suffix: str, prefix: str) -> dict[str, np.ndarray]:
    def p(name: str) -> np.ndarray:
        return getattr(lstm, f"{name}_l{layer}{suffix}").detach().numpy().astype(np.float32)

    arrays: dict[str, np.ndarray] = {}
    w_ih, w_hh = np.split(p("weight_ih"), 4), np.split(p("weight_hh"), 4)
    bias = np.split(p("bias_ih") + p("bias_hh"), 4)
    for gate, wi, wh, b in zip(TORCH_GATES, w_ih, w_hh, bias, strict=True):
        arrays[f"{prefix}input_to_{gate}_weights"] = wi
        arrays[f"{prefix}recurrent_to_{gate}_weights"] = wh
        arrays[f"{prefix}{gate}_gate_bias"] = b
    if lstm.proj_size:
        arrays[f"{prefix}projection_weights"] = p("weight_hr")
    return arrays


@pytest.mark.torch
@pytest.mark.parametrize(("proj", "bidirectional"), [(0, False), (3, False), (3, True)])
def test_npz_written_by_hand_from_torch_matches_torch(tmp_path, proj, bidirectional):
    torch = pytest.importorskip("torch")
    torch.manual_seed(7)
    lstm = torch.nn.LSTM(5, 6, num_layers=2, proj_size=proj, bidirectional=bidirectional)
    arrays: dict[str, np.ndarray] = {}
    for k in range(2):
        arrays |= _torch_direction(lstm, k, "", f"layer{k}.")
        if bidirectional:
            arrays |= _torch_direction(lstm, k, "_reverse", f"layer{k}.backward.")
    path = tmp_path / "hand.npz"
    np.savez(path, **arrays)

    x = np.random.default_rng(3).normal(size=(7, 4, 5)).astype(np.float32)  # [T, B, I]
    with torch.no_grad():
        expected = lstm(torch.from_numpy(x))[0].numpy()
    ours = reference_model(from_npz(path), x.transpose(1, 0, 2)).output.transpose(1, 0, 2)
    assert np.abs(ours - expected).max() <= TOL


@pytest.mark.tf
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_npz_written_by_hand_from_tf_cell_matches_tf(tmp_path):
    tf = pytest.importorskip("tensorflow")
    n_in, units, proj, forget_bias = 3, 4, 2, 0.75
    cell = tf.compat.v1.nn.rnn_cell.LSTMCell(
        units, use_peepholes=True, num_proj=proj, cell_clip=0.6, proj_clip=0.4,
        forget_bias=forget_bias,
    )  # fmt: skip
    cell.build((None, n_in))
    rng = np.random.default_rng(11)
    for var in cell.weights:
        var.assign(rng.uniform(-0.8, 0.8, var.shape).astype(np.float32))
    values = {
        v.name.split("/")[-1].split(":")[0]: v.numpy()
        for v in cell.weights
        if "projection" not in v.name
    }
    kernel, bias = values["kernel"], values["bias"]  # [I + P, 4N] columns i, j, f, o
    arrays: dict[str, np.ndarray] = {}
    for gate, w, b in zip(TF_GATES, np.split(kernel, 4, axis=1), np.split(bias, 4), strict=True):
        arrays[f"input_to_{gate}_weights"] = w[:n_in].T
        arrays[f"recurrent_to_{gate}_weights"] = w[n_in:].T
        arrays[f"{gate}_gate_bias"] = b + (forget_bias if gate == "forget" else 0.0)
    for gate, tf_name in (("input", "w_i_diag"), ("forget", "w_f_diag"), ("output", "w_o_diag")):
        arrays[f"cell_to_{gate}_weights"] = values[tf_name]
    proj_kernel = next(v.numpy() for v in cell.weights if "projection" in v.name)
    arrays["projection_weights"] = proj_kernel.T
    arrays["cell_clip"], arrays["proj_clip"] = np.float32(0.6), np.float32(0.4)
    path = tmp_path / "tf_cell.npz"
    np.savez(path, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})

    x = rng.normal(size=(2, 6, n_in)).astype(np.float32)
    state = tf.compat.v1.nn.rnn_cell.LSTMStateTuple(tf.zeros((2, units)), tf.zeros((2, proj)))
    outs = []
    for t in range(x.shape[1]):
        y, state = cell(tf.constant(x[:, t]), state)
        outs.append(y.numpy())
    ours = reference_model(from_npz(path), x).output
    assert np.abs(ours - np.stack(outs, axis=1)).max() <= TOL


def _model(seed: int) -> LSTMModel:
    spec = LSTMSpec(4, 6, cifg=False, peephole=True)
    fwd = LSTMWeights.random(spec, seed=seed)
    bwd = LSTMWeights.random(spec, seed=seed + 1)
    top = LSTMWeights.random(LSTMSpec(12, 5, cifg=True), seed=seed + 2)
    return LSTMModel((LSTMLayer(fwd, bwd), LSTMLayer(top)))


@pytest.mark.parametrize("quantize", ["none", "dynamic"])
@pytest.mark.parametrize("composite", [False, True])
def test_onnx_reader_matches_onnxruntime_on_the_same_file(tmp_path, quantize, composite):
    import onnxruntime as ort

    from edgelstm.targets.onnx.emit import to_onnx

    model = _model(5)
    path = tmp_path / "m.onnx"
    options = CompileOptions(batch=None, seq_len=None, quantize=quantize)
    if composite:
        path.write_bytes(to_onnx(model, options, force_composite=True).SerializeToString())
    else:
        save_onnx(model, path, options)
    x = np.random.default_rng(0).normal(size=(3, 9, 4)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed_name = session.get_inputs()[0].name
    expected = session.run(None, {feed_name: x})[0]
    ours = reference_model(from_onnx(path), x).output
    # Dynamic files read back dequantized; onnxruntime also quantizes x and h on the fly,
    # so only the float files are exact.
    tol = TOL if quantize == "none" else 5e-2
    assert np.abs(ours - expected).max() <= tol
