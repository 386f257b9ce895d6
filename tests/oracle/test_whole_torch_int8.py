"""Full int8 of whole PyTorch modules (litert-torch segments quantized by ai-edge-quantizer,
edgelstm's int8 fused LSTMs, int8 at every internal boundary) against PyTorch itself on
ai-edge-litert: top-1 agreement >= 98% on held-out data, for modules trained a few dozen
optimizer steps on small learnable synthetic tasks (trained weights, not random); every
UNIDIRECTIONAL_SEQUENCE_LSTM in the file reads an int8 input."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")
litert = pytest.importorskip("ai_edge_litert.interpreter")
pytestmark = pytest.mark.torch

BATCH = 8
AGREEMENT = 0.98

from _torch_models import Conv1dLstm  # noqa: E402 - after the torch importorskip
from _torch_models import Crnn as _Crnn  # noqa: E402


def Conv1dLstmProj() -> Conv1dLstm:
    """Keyword-spotting shape: Conv1d front end, a projection LSTM, a head on the last step."""
    return Conv1dLstm(proj=6, last_step=True, channels=8, hidden=16)


def Crnn() -> _Crnn:
    """OCR shape with a 4-way per-column head."""
    return _Crnn(n_out=4)


def _kws_data(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class = which of channels 0..2 carries a burst (channel 3 is noise only)."""
    labels = torch.randint(0, 3, (n,), generator=gen)
    x = 0.5 * torch.randn(n, 4, 16, generator=gen)
    start = torch.randint(0, 10, (n,), generator=gen)
    steps = torch.arange(16)[None]
    burst = (steps >= start[:, None]) & (steps < start[:, None] + 6)
    x[torch.arange(n), labels] += burst.float()
    return x, labels


def _ocr_data(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per column: which of four row pairs holds the column's bright band."""
    labels = torch.randint(0, 4, (n, 12), generator=gen)
    x = 0.3 * torch.randn(n, 1, 8, 12, generator=gen)
    rows = torch.arange(8)[None, :, None] // 2 == labels[:, None, :]  # [n, 8, 12]
    return x + rows[:, None].float(), labels


CASES = {"conv1d_lstm_proj": (Conv1dLstmProj, _kws_data), "crnn_bilstm": (Crnn, _ocr_data)}


def _train(make, data, steps: int = 60):
    """The module after ``steps`` Adam steps; calibration and held-out inputs, labels."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    module = make()
    x, y = data(512, gen)
    opt = torch.optim.Adam(module.parameters(), lr=0.02)
    for step in range(steps):
        idx = torch.arange(step * 64, step * 64 + 64) % len(x)
        logits = module(x[idx])
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y[idx].reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    module.eval()
    calib, _ = data(256, gen)
    held, labels = data(512, gen)
    return module, calib, held, labels


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    """The file on LiteRT in batches of BATCH (int8 I/O through its own scales)."""
    interp = litert.Interpreter(model_content=data)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for i in range(0, len(x), BATCH):
        batch = x[i : i + BATCH]
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            batch = np.clip(np.round(batch / scale) + zero, -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], batch)
        interp.invoke()
        got = interp.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            got = (got - zero) * scale
        outs.append(got)
    return np.concatenate(outs)


def _lstm_input_types(data: bytes) -> list[str]:
    from edgelstm.targets.tflite.schema import BuiltinOperator, TensorType, load_model

    types = {v: k for k, v in vars(TensorType).items() if not k.startswith("_")}
    model = load_model(data)
    sub = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    lstm = BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    return [
        types[sub.tensors[op.inputs[0]].type]
        for op in sub.operators
        if codes[op.opcodeIndex] == lstm
    ]


@pytest.fixture(scope="module")
def built():
    """Each case built once: the KWS model through TorchConverter with int8 I/O, the CRNN
    through torch_to_tflite with float I/O (the default)."""
    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend (measured 20x slower)
    try:
        for name, (make, data) in CASES.items():
            out[name] = _build(name, make, data)
    finally:
        torch.set_num_threads(threads)
    return out


def _build(name, make, data):
    from edgelstm import CompileOptions
    from edgelstm.whole.torch_module import TorchConverter
    from edgelstm.whole.torch_split import torch_to_tflite

    module, calib, held, labels = _train(make, data)
    if name == "conv1d_lstm_proj":
        converter = TorchConverter.from_module(module, held[:BATCH].numpy())
        converter.optimizations = ["DEFAULT"]
        converter.representative_dataset = lambda c=calib: ([row[None]] for row in c)
        converter.inference_input_type = np.int8
        converter.inference_output_type = np.int8
        blob = converter.convert()
    else:
        options = CompileOptions(quantize="int8", calibration=calib.numpy())
        blob = torch_to_tflite(module, held[:BATCH], options)
    with torch.no_grad():
        expected = module(held).numpy()
    return blob, held.numpy(), expected, labels.numpy(), module


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_int8_agrees_with_torch(built, name) -> None:
    blob, held, expected, labels, *_ = built[name]
    got = _run(blob, held)
    assert got.shape == expected.shape
    agree = float((got.argmax(-1) == expected.argmax(-1)).mean())
    assert float((expected.argmax(-1) == labels).mean()) > 0.9  # the module learnt the task
    assert agree >= AGREEMENT, (agree, float(np.abs(got - expected).max()))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_int8_every_lstm_input_integer(built, name) -> None:
    blob, *_, module = built[name]
    lstms = [m for m in module.modules() if isinstance(m, torch.nn.LSTM)]
    directions = sum(m.num_layers * (2 if m.bidirectional else 1) for m in lstms)
    assert _lstm_input_types(blob) == ["INT8"] * directions


@pytest.mark.slow
def test_int8_io_types(built) -> None:
    """Float I/O by default (a drop-in for the float file), int8 with the converter's types."""
    interp = litert.Interpreter(model_content=built["crnn_bilstm"][0])
    assert interp.get_input_details()[0]["dtype"] == np.float32
    assert interp.get_output_details()[0]["dtype"] == np.float32
    interp = litert.Interpreter(model_content=built["conv1d_lstm_proj"][0])
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8


def test_int8_needs_calibration() -> None:
    from edgelstm import CompileOptions
    from edgelstm.errors import CalibrationError
    from edgelstm.whole.torch_split import torch_to_tflite

    module = Conv1dLstmProj().eval()
    x = torch.randn(2, 4, 16)
    with pytest.raises(CalibrationError, match="calibration"):
        torch_to_tflite(module, x, CompileOptions(quantize="int8"))
    with pytest.raises(CalibrationError, match=r"expected \[N, 4, 16\]"):
        torch_to_tflite(module, x, CompileOptions(quantize="int8", calibration=np.zeros((3, 4))))


def test_calibration_whole_inputs_or_samples() -> None:
    """[N, *x.shape] is N whole inputs; [N, *x.shape[1:]] runs of len(x) along axis 0."""
    from edgelstm.whole.torch_int8 import calibration_batches

    whole = torch.randn(3, 2, 4, 16)
    batches = calibration_batches(whole.numpy(), whole[0])
    assert len(batches) == 3 and torch.equal(batches[1], whole[1])
    batches = calibration_batches(whole.reshape(6, 4, 16).numpy(), whole[0])
    assert len(batches) == 3 and torch.equal(batches[2], whole[2])
