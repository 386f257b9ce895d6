"""edgelstm.whole.torch_module: contract and refusals (numbers vs PyTorch: tests/oracle)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgelstm.errors import CalibrationError, MissingDependencyError, SpecError, UnsupportedError
from edgelstm.ir.options import CompileOptions

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.torch

from edgelstm.whole.torch_module import TorchConverter, from_torch_module  # noqa: E402

WRONG_PROJECTION = r"dropped the projection.*from_torch_module\(module, x\)"


class LinLstm(torch.nn.Module):
    def __init__(self, proj: int = 0, layers: int = 1, bidirectional: bool = False) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(3, 5)
        self.lstm = torch.nn.LSTM(
            5, 6, layers, bidirectional=bidirectional, proj_size=proj, batch_first=True
        )
        self.out = torch.nn.Linear((proj or 6) * (2 if bidirectional else 1), 2)

    def forward(self, x, *state):
        y, (h, c) = self.lstm(self.inp(x), state or None)
        return self.out(y), h, c


def _run(proto, feeds):
    return ort.InferenceSession(proto.SerializeToString()).run(None, feeds)


def _expected(module, *args):
    with torch.no_grad():
        return [t.numpy() for t in module(*args)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_projection_stack_with_states_all_outputs() -> None:
    """proj_size, 2 layers, bidirectional, (h0, c0) given: y, h_n, c_n all exact."""
    module = LinLstm(proj=4, layers=2, bidirectional=True).eval()
    x, h0, c0 = torch.randn(3, 7, 3), torch.randn(4, 3, 4), torch.randn(4, 3, 6)
    proto = from_torch_module(
        module,
        (x, h0, c0),
        input_names=["x", "h0", "c0"],
        output_names=["y", "h", "c"],
        dynamic_axes={"x": {0: "batch", 1: "time"}, "h0": {1: "batch"}, "c0": {1: "batch"}},
    )
    for batch, steps in ((3, 7), (2, 11)):  # dynamic batch and length
        x, h0, c0 = torch.randn(batch, steps, 3), torch.randn(4, batch, 4), torch.randn(4, batch, 6)
        got = _run(proto, {"x": x.numpy(), "h0": h0.numpy(), "c0": c0.numpy()})
        for a, b in zip(got, _expected(module, x, h0, c0), strict=True):
            assert np.abs(a - b).max() <= 1e-5
    whole = json.loads({p.key: p.value for p in proto.metadata_props}["edgelstm.whole"])
    assert whole["spliced"][0]["how"] == "composite" and whole["rewritten"] == 0
    assert all(o.domain != "edgelstm.splice" for o in proto.opset_import)


def test_module_restored_after_export() -> None:
    module = LinLstm(proj=4)
    lstm = module.lstm
    from_torch_module(module, torch.randn(1, 4, 3))
    assert module.lstm is lstm and module.training  # same object, training mode back


def test_plain_lstm_rewritten_and_dynamo_matches() -> None:
    pytest.importorskip("onnxscript")
    module = LinLstm().eval()
    x = torch.randn(2, 5, 3)
    for dynamo in (False, True):
        proto = from_torch_module(module, x, dynamo=dynamo)
        got = _run(proto, {proto.graph.input[0].name: x.numpy()})
        assert np.abs(got[0] - _expected(module, x)[0]).max() <= 1e-5
        meta = {p.key: p.value for p in proto.metadata_props}
        assert json.loads(meta["edgelstm.rewrite"])["rewritten"]
        assert ("dynamo" in json.loads(meta["edgelstm.whole"])["exporter"]) is dynamo


def test_dynamo_projection_spliced_with_states() -> None:
    """dynamo=True: the placeholder is a custom op translated to the same node: exact."""
    pytest.importorskip("onnxscript")
    module = LinLstm(proj=4, layers=2).eval()
    x, h0, c0 = torch.randn(3, 7, 3), torch.randn(2, 3, 4), torch.randn(2, 3, 6)
    proto = from_torch_module(module, (x, h0, c0), dynamo=True, input_names=["x", "h0", "c0"])
    got = _run(proto, {"x": x.numpy(), "h0": h0.numpy(), "c0": c0.numpy()})
    for a, b in zip(got, _expected(module, x, h0, c0), strict=True):
        assert np.abs(a - b).max() <= 1e-5
    whole = json.loads({p.key: p.value for p in proto.metadata_props}["edgelstm.whole"])
    assert whole["spliced"][0]["module"] == "lstm" and "dynamo" in whole["exporter"]
    assert proto.opset_import[0].version >= 18  # the dynamo exporter's opset, kept


def test_refusals() -> None:
    with pytest.raises(SpecError, match=r"nn\.Module"):
        from_torch_module(object(), torch.randn(1, 4, 3))
    with pytest.raises(UnsupportedError, match="static int8"):
        from_torch_module(LinLstm(), torch.randn(1, 4, 3), CompileOptions(quantize="int8"))
    with pytest.raises(UnsupportedError, match="no LSTM node"):
        from_torch_module(torch.nn.Linear(3, 2), torch.randn(1, 3))
    with pytest.raises(SpecError, match="example_input"):
        from_torch_module(LinLstm(), "not a tensor")


def test_unbatched_projection_input_refused() -> None:
    class Unbatched(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 6, proj_size=2)

        def forward(self, x):
            return self.lstm(x)[0]

    with pytest.raises(UnsupportedError, match="3-D float32"):
        from_torch_module(Unbatched(), torch.randn(5, 3))


def test_numpy_input_and_converter_onnx() -> None:
    module = LinLstm(proj=2).eval()
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    converter = TorchConverter.from_module(module, x)
    converter.optimizations = ["DEFAULT"]
    proto = converter.to_onnx()
    assert {p.key: p.value for p in proto.metadata_props}["edgelstm.quantize"] == "dynamic"
    got = _run(proto, {"input": x})[0]
    assert np.abs(got - _expected(module, torch.from_numpy(x))[0]).max() < 0.05


def test_missing_torch_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r"edgelstm\[torch\]"):
        from_torch_module(object(), None)


# ---------------------------------------------------------------- TFLite split (torch_split)


class _Skip(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(3, 6)
        self.lstm = torch.nn.LSTM(6, 6, batch_first=True)

    def forward(self, x):
        z = self.inp(x)
        return self.lstm(z)[0] + z  # a residual around the LSTM


class _FinalState(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 6, batch_first=True)
        self.fc = torch.nn.Linear(6, 2)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h.sum(0))  # not only the last layer's h_n[-1]


class _TwoOut(_FinalState):
    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y), y


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        (_Skip(), "not a chain"),
        (_FinalState(), r"final states \(h_n, c_n\)"),
        (_TwoOut(), "returns several values"),
        (torch.nn.Sequential(torch.nn.Linear(3, 2)), "no nn.LSTM call"),
    ],
    ids=["skip", "final-state", "tuple-out", "no-lstm"],
)
def test_split_refuses_non_chains_with_onnx_way_out(module, reason) -> None:
    from edgelstm.whole.torch_split import split_torch

    with pytest.raises(UnsupportedError, match=reason) as info:
        split_torch(module)
    assert "from_torch_module" in str(info.value)


def test_split_chain_parts() -> None:
    from edgelstm.whole.torch_split import split_torch

    class Chain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = LinLstm().lstm
            self.inp, self.out = torch.nn.Linear(3, 5), torch.nn.Linear(6, 2)

        def forward(self, x):
            y, _ = self.lstm(torch.relu(self.inp(x)))
            return self.out(y)

    module = Chain().eval()
    parts = split_torch(module)
    assert [p.kind for p in parts] == ["torch", "lstm", "torch"]
    x = torch.randn(2, 4, 3)
    value = x
    with torch.no_grad():
        for part in parts:
            value = part.module(value)[0] if part.kind == "lstm" else part.module(value)
        assert torch.equal(value, module(x))  # the parts compose to the module


def test_tflite_needs_litert_torch(monkeypatch) -> None:
    from edgelstm.whole.torch_split import torch_to_tflite

    monkeypatch.setitem(sys.modules, "litert_torch", None)
    with pytest.raises(MissingDependencyError, match=r"edgelstm\[torch-tflite\].*ONNX"):
        torch_to_tflite(_FinalState(), torch.randn(1, 4, 3))
    # full int8 needs calibration data: refused before the (slow) litert-torch import
    with pytest.raises(CalibrationError, match="calibration"):
        torch_to_tflite(_FinalState(), torch.randn(1, 4, 3), CompileOptions(quantize="int8"))


def test_exported_program_file(tmp_path) -> None:
    """A torch.export .pt2 goes through the dynamo exporter; its proj_size graph is wrong:
    refused even with strict=False, naming the nn.Module way out."""
    pytest.importorskip("onnxscript")
    for proj in (0, 2):
        module = LinLstm(proj=proj).eval()
        x = torch.randn(2, 4, 3)
        path = tmp_path / f"m{proj}.pt2"
        torch.export.save(torch.export.export(module, (x,)), path)
        if proj:
            with pytest.raises(UnsupportedError, match=WRONG_PROJECTION):
                from_torch_module(path, None, strict=False)
            continue
        proto = from_torch_module(path, None)
        got = _run(proto, {proto.graph.input[0].name: x.numpy()})
        for a, b in zip(got, _expected(module, x), strict=True):
            assert np.abs(a - b).max() <= 1e-5
