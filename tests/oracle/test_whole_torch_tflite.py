"""Whole PyTorch modules to one .tflite (litert-torch around the LSTMs, edgelstm's fused LSTMs,
linked) against PyTorch itself (eval mode) on ai-edge-litert: float <= 1e-5; dynamic int8
within ``2 * ||W_head||_inf * e`` where e is the hybrid error of edgelstm's LSTM alone vs
PyTorch (the bound of tests/oracle/test_whole_onnx.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
litert = pytest.importorskip("ai_edge_litert.interpreter")
pytestmark = pytest.mark.torch

TOL = 1e-5

from _torch_models import Conv1dLstm, Crnn  # noqa: E402 - after the torch importorskip


def Conv1dLstmProj() -> Conv1dLstm:
    return Conv1dLstm(proj=4)


class TwoLstms(torch.nn.Module):
    """LSTM first (no prefix), a middle segment, a time-major projection LSTM, last step."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.LSTM(5, 8, batch_first=True)
        self.mid = torch.nn.Linear(8, 6)
        self.b = torch.nn.LSTM(6, 4, proj_size=2)
        self.fc = torch.nn.Linear(2, 3)

    def forward(self, x):
        y = torch.tanh(self.mid(self.a(x)[0])).transpose(0, 1)
        y, _ = self.b(y)
        return self.fc(y[-1])


class Classifier(torch.nn.Module):
    """The final-state classifier: ``fc(h_n[-1])`` of a 2-layer projection LSTM, time-major."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(3, 5)
        self.lstm = torch.nn.LSTM(5, 7, 2, proj_size=4)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        _, (h, _) = self.lstm(torch.relu(self.inp(x)))
        return torch.softmax(self.fc(h[-1]), -1)


CASES = {
    "conv1d_lstm_proj": (Conv1dLstmProj, (2, 4, 10)),
    "crnn_bilstm": (Crnn, (2, 1, 8, 12)),
    "two_lstms": (TwoLstms, (2, 7, 5)),
    "final_h_classifier": (Classifier, (6, 2, 3)),
}


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    interp = litert.Interpreter(model_content=data)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def _opnames(data: bytes) -> list[str]:
    from edgelstm.targets.tflite.schema import BuiltinOperator, load_model

    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    model = load_model(data)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    return [names[codes[op.opcodeIndex]] for op in model.subgraphs[0].operators]


@pytest.fixture(scope="module")
def converted():
    from edgelstm.whole.torch_split import torch_to_tflite

    torch.manual_seed(0)
    out = {}
    for name, (make, shape) in CASES.items():
        module = make().eval()
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = module(x).numpy()
        out[name] = (torch_to_tflite(module, x), x.numpy(), expected, module)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_torch_module_tflite_exact_and_fused(converted, name) -> None:
    data, x, expected, module = converted[name]
    assert np.abs(_run(data, x) - expected).max() <= TOL
    lstms = [m for m in module.modules() if isinstance(m, torch.nn.LSTM)]
    directions = sum(m.num_layers * (2 if m.bidirectional else 1) for m in lstms)
    assert _opnames(data).count("UNIDIRECTIONAL_SEQUENCE_LSTM") == directions


@pytest.mark.parametrize("name", ["conv1d_lstm_proj", "crnn_bilstm"])
def test_torch_module_tflite_dynamic_within_hybrid_error(converted, name) -> None:
    from edgelstm import CompileOptions, from_torch, to_tflite
    from edgelstm.errors import UnsupportedError
    from edgelstm.whole.torch_module import TorchConverter
    from edgelstm.whole.torch_split import torch_to_tflite

    _, x, expected, module = converted[name]
    if name == "crnn_bilstm":
        data = torch_to_tflite(module, torch.from_numpy(x), CompileOptions(quantize="dynamic"))
    else:  # the converter verbs: optimizations = dynamic int8; numpy example input
        converter = TorchConverter.from_module(module, x)
        converter.optimizations = ["DEFAULT"]
        data = converter.convert()
        converter.representative_dataset = lambda: [x]  # full int8: .tflite only
        with pytest.raises(UnsupportedError, match="static int8 is not supported for ONNX"):
            converter.to_onnx()
    err = float(np.abs(_run(data, x) - expected).max())
    seen: dict = {}
    hook = module.lstm.register_forward_hook(lambda m, i, o, s=seen: s.update(z=i[0]))
    with torch.no_grad():
        module(torch.from_numpy(x))
        z = seen["z"]
        lstm_out = module.lstm(z)[0].numpy()
    hook.remove()
    fixed = CompileOptions(batch=z.shape[0], seq_len=z.shape[1], quantize="dynamic")
    alone = to_tflite(from_torch(module.lstm), fixed)  # batch_first: z is [B, T, I]
    e_alone = float(np.abs(_run(alone, z.numpy()) - lstm_out).max())
    head = float(np.abs(module.fc.weight.detach().numpy()).sum(1).max())
    assert 0 < err <= 2 * head * e_alone, (err, head, e_alone)
    assert len(data) < len(converted[name][0])  # int8 weights
