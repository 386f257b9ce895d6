"""``edgelstm compile model.pt2 -o out.onnx``: a torch.export program, whole, vs PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm.cli.main import main

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.torch


class _ConvLstm(torch.nn.Module):
    """Conv1d front end -> LSTM -> Linear on the last step (a keyword-spotting shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(6, 8, 3, padding=1)
        self.lstm = torch.nn.LSTM(8, 16, batch_first=True)
        self.fc = torch.nn.Linear(16, 4)

    def forward(self, x):
        y = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return self.fc(self.lstm(y)[0][:, -1])


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    torch.manual_seed(0)
    module = _ConvLstm().eval()
    x = torch.randn(2, 12, 6)
    path = tmp_path_factory.mktemp("pt2") / "kws.pt2"
    torch.export.save(torch.export.export(module, (x,)), str(path))
    with torch.no_grad():
        expected = module(x).numpy()
    return path, x.numpy(), expected


def test_pt2_to_onnx_equals_pytorch(program, tmp_path, capsys):
    path, x, expected = program
    out = tmp_path / "kws.onnx"
    assert main(["compile", str(path), "-o", str(out)]) == 0
    assert "whole torch.export program" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert np.abs(got - expected).max() <= 1e-5


def test_pt2_to_tflite_is_refused_with_the_python_route(program, tmp_path, capsys):
    path, _, _ = program
    out = tmp_path / "kws.tflite"
    assert main(["compile", str(path), "-o", str(out)]) == 2
    assert "torch_to_tflite" in capsys.readouterr().err
    assert not out.exists()
