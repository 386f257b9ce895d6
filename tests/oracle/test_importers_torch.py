"""from_torch against PyTorch's own nn.LSTM forward pass, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm import ModelFileError, SpecError, UnsupportedError, WeightsError, reference_model
from edgelstm.importers import from_torch

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore:LSTM with projections")]

TOL = 1e-5


def _lstm(seed: int = 0, **kwargs) -> torch.nn.LSTM:
    torch.manual_seed(seed)
    return torch.nn.LSTM(**kwargs).eval()


def _compare(lstm: torch.nn.LSTM, model, rng, *, states: bool = False, batch: int = 3) -> float:
    """Max abs error of reference_model(model) vs lstm's forward (output, h_n, c_n)."""
    d = 2 if lstm.bidirectional else 1
    n_h = lstm.proj_size or lstm.hidden_size
    steps = 6
    shape = (batch, steps, lstm.input_size) if lstm.batch_first else (steps, batch, lstm.input_size)
    x = rng.standard_normal(shape).astype(np.float32)
    init = None
    args = (torch.from_numpy(x),)
    if states:
        h0 = rng.standard_normal((lstm.num_layers * d, batch, n_h)).astype(np.float32)
        c0 = rng.standard_normal((lstm.num_layers * d, batch, lstm.hidden_size)).astype(np.float32)
        args = (torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
        init = [[(h0[k * d + j], c0[k * d + j]) for j in range(d)] for k in range(lstm.num_layers)]
    with torch.no_grad():
        y, (h_n, c_n) = lstm(*args)
    out = reference_model(model, x, initial_states=init)
    err = float(np.max(np.abs(out.output - y.double().numpy())))
    for k, layer_states in enumerate(out.states):
        for j, (h, c) in enumerate(layer_states):
            err = max(err, float(np.max(np.abs(h - h_n[k * d + j].double().numpy()))))
            err = max(err, float(np.max(np.abs(c - c_n[k * d + j].double().numpy()))))
    return err


CASES = {
    "plain": dict(input_size=5, hidden_size=7),
    "batch_first": dict(input_size=5, hidden_size=7, batch_first=True),
    "no_bias": dict(input_size=5, hidden_size=7, bias=False),
    "proj": dict(input_size=5, hidden_size=8, proj_size=3, batch_first=True),
    "two_layers": dict(input_size=5, hidden_size=6, num_layers=2, dropout=0.3),
    "bidirectional": dict(input_size=4, hidden_size=6, bidirectional=True, batch_first=True),
    "everything": dict(
        input_size=4, hidden_size=6, num_layers=2, bidirectional=True, proj_size=2, bias=False
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("states", [False, True], ids=["zero_state", "given_state"])
def test_module_matches_torch_forward(name, states, rng):
    lstm = _lstm(**CASES[name])
    model = from_torch(lstm)
    assert model.time_major == (not lstm.batch_first)
    assert len(model.layers) == lstm.num_layers
    assert model.layers[0].bidirectional == lstm.bidirectional
    spec = model.layers[0].forward.spec
    assert spec.projection == bool(lstm.proj_size)
    assert _compare(lstm, model, rng, states=states) <= TOL


def test_state_dict_needs_batch_first_from_caller(rng):
    lstm = _lstm(**CASES["everything"] | {"batch_first": True})
    model = from_torch(lstm.state_dict(), batch_first=True)
    assert not model.time_major
    assert model.provenance["biases"].startswith("none")
    assert _compare(lstm, model, rng) <= TOL
    assert from_torch(lstm.state_dict()).time_major  # PyTorch's default: time-major


def test_state_dict_file_and_prefix(tmp_path, rng):
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 5, proj_size=2, num_layers=2)
            self.head = torch.nn.Linear(2, 1)

    net = Net()
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(SpecError, match=r"non-LSTM parameters.*prefix='lstm\.'"):
        from_torch(path)
    model = from_torch(str(path), prefix="lstm")
    assert model.provenance["prefix"] == "lstm."
    assert _compare(net.lstm.eval(), model, rng) <= TOL
    torch.save(net.lstm.state_dict(), tmp_path / "lstm.pth")
    assert _compare(net.lstm, from_torch(tmp_path / "lstm.pth"), rng) <= TOL


def test_float64_module(rng):
    lstm = _lstm(input_size=3, hidden_size=4).double()
    x = rng.standard_normal((5, 2, 3))
    with torch.no_grad():
        y, _ = lstm(torch.from_numpy(x))
    out = reference_model(from_torch(lstm), x).output
    assert np.max(np.abs(out - y.numpy())) <= TOL


def test_conflicting_batch_first_is_refused():
    with pytest.raises(SpecError, match="batch_first"):
        from_torch(_lstm(input_size=2, hidden_size=3, batch_first=True), batch_first=False)


@pytest.mark.parametrize(
    ("module", "match"),
    [
        (torch.nn.GRU(3, 4), "GRU is not an LSTM"),
        (torch.nn.RNN(3, 4), "RNN is not an LSTM"),
        (torch.nn.LSTMCell(3, 4), "LSTMCell"),
        (torch.nn.Sequential(torch.nn.LSTM(3, 4)), "expected an nn.LSTM, found Sequential"),
    ],
)
def test_non_lstm_modules_are_refused(module, match):
    with pytest.raises(UnsupportedError, match=match):
        from_torch(module)


def test_gru_state_dict_is_refused():
    with pytest.raises(UnsupportedError, match=r"nn\.GRU"):
        from_torch(torch.nn.GRU(3, 4).state_dict())


def test_overridden_forward_is_refused():
    class Odd(torch.nn.LSTM):
        def forward(self, x, hx=None):  # pragma: no cover - never run
            return super().forward(x * 2, hx)

    with pytest.raises(UnsupportedError, match="overrides"):
        from_torch(Odd(2, 3))


def test_incomplete_state_dict_is_refused():
    state = _lstm(input_size=2, hidden_size=3, num_layers=2).state_dict()
    del state["weight_hh_l1"]
    with pytest.raises(WeightsError, match="weight_hh_l1"):
        from_torch(state)
    gap = {k.replace("_l1", "_l7"): v for k, v in state.items() if "_l0" not in k}
    with pytest.raises(WeightsError, match=r"not numbered 0\.\.0"):
        from_torch(gap)


def test_pickled_module_file_is_refused(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.LSTM(2, 3), path)
    with pytest.raises(ModelFileError, match=r"pickled Python object.*state_dict"):
        from_torch(path)


def test_torchscript_file_is_refused(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    with pytest.raises(ModelFileError, match="TorchScript"):
        from_torch(path)


def test_damaged_files_are_refused(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(_lstm(input_size=2, hidden_size=3).state_dict(), good)
    data = good.read_bytes()
    for k, cut in enumerate((0, 10, 100, len(data) // 2, len(data) - 10)):
        bad = tmp_path / f"bad{k}.pt"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            from_torch(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ModelFileError):
        from_torch(junk)
    with pytest.raises(ModelFileError, match="not found"):
        from_torch(tmp_path / "missing.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ModelFileError, match="expected a state_dict"):
        from_torch(tmp_path / "tensor.pt")


class _LSTMWithHead(torch.nn.Module):
    """A batch_first nn.LSTM followed by an nn.Linear on every step (the usual tagger)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(4, 6, batch_first=True)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.lstm(x)[0])


def _run_file(path, x: np.ndarray) -> np.ndarray:
    """The compiled file's output on the runtime users run it on (fresh session, one call)."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_cli_batch_first_with_linear_head_matches_torch(tmp_path, suffix, capsys):
    from edgelstm.cli.main import main

    torch.manual_seed(3)
    net = _LSTMWithHead().eval()
    path = tmp_path / "tagger.pt"
    torch.save(net.state_dict(), path)
    out = tmp_path / f"tagger{suffix}"
    argv = ["compile", str(path), "-o", str(out), "--batch", "3", "--seq-len", "6"]
    assert main([*argv, "--batch-first", "--head", "fc."]) == 0
    assert "Dense(3, linear)" in capsys.readouterr().out
    x = np.random.default_rng(5).standard_normal((3, 6, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    got = _run_file(out, x)
    assert got.shape == expected.shape == (3, 6, 3)
    assert float(np.max(np.abs(got - expected))) <= TOL


def test_cli_state_dict_errors_name_the_flags(tmp_path, capsys):
    from edgelstm.cli.main import main

    net = _LSTMWithHead()
    path = tmp_path / "tagger.pt"
    torch.save(net.state_dict(), path)
    out = tmp_path / "t.tflite"
    assert main(["compile", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--prefix lstm." in err and "--head fc." in err  # the detected Linear is reported
    assert not out.exists()
    two = {f"enc.{k}": v for k, v in net.lstm.state_dict().items()}
    two |= {f"dec.{k}": v for k, v in net.lstm.state_dict().items()}
    torch.save(two, path)
    assert main(["compile", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--prefix" in err and "'dec.'" in err and "'enc.'" in err
    assert main(["compile", str(path), "-o", str(out), "--prefix", "dec."]) == 0
    assert "time-major" in capsys.readouterr().err  # no --batch-first: the assumption is said
    assert main(["compile", str(path), "-o", str(out), "--prefix", "dec", "--head", "x."]) == 2
    assert "no nn.Linear weight 'x.weight'" in capsys.readouterr().err


def test_from_torch_head_per_step_matches_torch(rng):
    torch.manual_seed(4)
    net = _LSTMWithHead().eval()
    model = from_torch(net.state_dict(), batch_first=True, head="fc")
    assert model.provenance["head"] == "fc."
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).double().numpy()
    assert float(np.max(np.abs(reference_model(model, x).output - expected))) <= TOL
