"""``optimize_latency`` and ``edgelstm compile --optimize latency``: every candidate is built,
verified and (within budget) timed; the result is written; the table says why each lost.
No timing assertions: only that the choice respects the budget and the table is complete."""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights, optimize_latency, reference_model, save_npz
from edgelstm.cli.main import main
from edgelstm.ir.options import CompileOptions
from edgelstm.measure.optimize import NoCandidateError, candidates
from edgelstm.runtime import LiteRTRunner
from edgelstm.runtime.ort import OrtRunner

RUNS = 8


@pytest.fixture(scope="module")
def model() -> LSTMModel:
    spec = LSTMSpec(n_input=6, n_cell=12, peephole=True)
    return LSTMModel.of(LSTMWeights.random(spec, seed=5))


def _data(n=4, steps=10, features=6) -> np.ndarray:
    return np.random.default_rng(3).normal(size=(n, steps, features)).astype(np.float32)


def _verdicts_ok(table, budget):
    chosen = [c for c in table.candidates if c.chosen]
    assert len(chosen) == 1 and chosen[0] is table.candidates[0]
    assert chosen[0].error is not None and chosen[0].error <= budget
    for c in table.candidates:
        assert c.verdict, c.name
        if c.verdict.startswith("slower"):
            assert c.error <= budget and c.p50_ms >= chosen[0].p50_ms
        if c.verdict.startswith("error over budget"):
            assert c.error > budget
    return chosen[0]


def test_tflite_search_respects_budget(model):
    x = _data()
    options = CompileOptions(batch=1, seq_len=10)
    data, table = optimize_latency(model, "tflite", 1e-2, x, options=options, runs=RUNS)
    best = _verdicts_ok(table, 1e-2)
    names = {(c.name, c.quantize) for c in table.candidates}
    assert ("tflite fused", "none") in names and ("tflite fused", "dynamic") in names
    assert any(n.startswith("tflite unfused") and q == "dynamic" for n, q in names)
    assert any(n.startswith("tflite unfused") and q == "int8" for n, q in names)
    y = np.concatenate([LiteRTRunner(data).run(x[k : k + 1])[0] for k in range(len(x))])
    assert np.max(np.abs(y - reference_model(model, x).output)) <= 1e-2
    assert best.name in table.format() and "verdict" in table.format()


def test_tight_budget_keeps_only_float(model):
    _, table = optimize_latency(
        model, "model.tflite", 1e-5, _data(), options=CompileOptions(seq_len=10), runs=RUNS
    )
    best = _verdicts_ok(table, 1e-5)
    assert best.quantize == "none"
    assert any(c.verdict.startswith("error over budget") for c in table.candidates)


def test_onnx_search(model):
    data, table = optimize_latency(
        model, "onnx", 1e-4, None, options=CompileOptions(seq_len=10), runs=RUNS
    )
    _verdicts_ok(table, 1e-4)
    assert all(c.format == "onnx" for c in table.candidates)
    x = _data(1)
    y = OrtRunner(data).run(x)[0]
    np.testing.assert_allclose(y, reference_model(model, x).output, atol=1e-4)


def test_refused_candidates_are_listed():
    spec = LSTMSpec(n_input=3, n_cell=4, activation="sigmoid")  # the fused op cannot express it
    model = LSTMModel.of(LSTMWeights.random(spec, seed=2))
    _, table = optimize_latency(model, "tflite", 1e-2, options=CompileOptions(seq_len=5), runs=RUNS)
    fused = [c for c in table.candidates if c.name == "tflite fused"]
    assert fused and all(c.verdict.startswith("refused:") for c in fused)
    assert table.candidates[0].name.startswith("tflite unfused")


def test_nothing_within_budget_raises_with_table(model):
    with pytest.raises(NoCandidateError) as info:
        optimize_latency(model, "tflite", 1e-12, _data(2), options=CompileOptions(seq_len=10))
    assert "error over budget" in info.value.table.format()


def test_candidate_list_has_schedules(model):
    long = candidates(model, "tflite", CompileOptions(seq_len=200, quantize="none"))
    assert any("WHILE" in c.name for c in long)
    short = candidates(model, "tflite", CompileOptions(seq_len=4))
    assert any("unrolled" in c.name for c in short) and any("WHILE" in c.name for c in short)


def test_cli_optimize_latency(model, tmp_path, capsys):
    src, out, data = tmp_path / "m.npz", tmp_path / "m.tflite", tmp_path / "x.npy"
    save_npz(model, src)
    np.save(data, _data())
    argv = ["compile", str(src), "-o", str(out), "--seq-len", "10", "--optimize", "latency"]
    code = main([*argv, "--max-error", "1e-2", "--data", str(data), "--runs", str(RUNS)])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file() and out.stat().st_size > 0
    assert "candidate" in printed and "chosen" in printed and f"wrote {out}" in printed
    x = _data()
    y = np.concatenate([LiteRTRunner(out).run(x[k : k + 1])[0] for k in range(len(x))])
    assert np.max(np.abs(y - reference_model(model, x).output)) <= 1e-2


def test_cli_optimize_errors(model, tmp_path, capsys):
    src, out = tmp_path / "m.npz", tmp_path / "m.onnx"
    save_npz(model, src)
    base = ["compile", str(src), "-o", str(out), "--seq-len", "10"]
    assert main([*base, "--optimize", "latency"]) == 2  # no --max-error
    assert main([*base, "--max-error", "1e-2"]) == 2  # --max-error without --optimize
    assert main([*base, "--optimize", "latency", "--max-error", "1e-2", "--quantize", "int8"]) == 2
    code = main([*base, "--optimize", "latency", "--max-error", "1e-12", "--runs", "2"])
    captured = capsys.readouterr()
    assert code == 2 and "error over budget" in captured.out and not out.exists()


def test_onnx_uint8_weights_candidate():
    import onnx

    from edgelstm.ir.model import LSTMLayer
    from edgelstm.targets.onnx.u8 import to_onnx_uint8_weights

    w = [LSTMWeights.random(LSTMSpec(n_input=6, n_cell=16), seed=s) for s in (1, 2)]
    model = LSTMModel(layers=(LSTMLayer(w[0], w[1]),))
    data = to_onnx_uint8_weights(model, CompileOptions(batch=2, seq_len=12))
    proto = onnx.load_model_from_string(data)
    node = next(n for n in proto.graph.node if n.op_type == "DynamicQuantizeLSTM")
    types = {i.name: i.data_type for i in proto.graph.initializer}
    assert types[node.input[1]] == types[node.input[2]] == onnx.TensorProto.UINT8
    x = _data(2, 12)
    y = OrtRunner(data).run(x)[0]
    assert np.max(np.abs(y - reference_model(model, x).output)) <= 1e-2


def test_a_speed_tie_goes_to_the_more_accurate_candidate():
    """Same kernel, timing noise: the 2% "faster" full-range file must not win on a coin flip."""
    from edgelstm.measure.optimize import TIE_MARGIN, Candidate, choose

    def cand(name, p50, error):
        return Candidate(name, "onnx", "dynamic", lambda: b"", p50_ms=p50, error=error)

    full, pair, u8 = cand("full", 0.360, 0.21), cand("pair", 0.367, 0.012), cand("u8", 0.55, 0.009)
    assert choose([full, pair, u8]) is pair and pair.chosen and not full.chosen
    slow = cand("slow", 0.360 * (1 + 2 * TIE_MARGIN), 0.001)
    fast = cand("fast", 0.360, 0.02)
    assert choose([slow, fast]) is fast  # beyond the margin, speed decides
