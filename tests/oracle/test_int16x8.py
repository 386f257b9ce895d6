"""``--quantize int16x8``: the all-integer lowering with int16 activations end to end.

Oracles: the float64 reference of the source weights (LiteRT output error, in the fused
int8 file's output LSB and half-width, next to the int8 all-integer lowering's on the same
data), TFLite Micro for LiteRT (the same file, the same outputs within one int8-file code),
and LiteRT's own tensor details (int16 I/O). Measured with ``tools/bench_int8_trained.py``
on JapaneseVowels' 370 held-out utterances: int16x8 0.220 LSB / max 0.070 of the
half-width / 0 flips, int8 integer lowering 0.365 / 0.074 / 0.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgelstm.errors import CalibrationError, SpecError, UnsupportedError
from edgelstm.ir.options import CompileOptions, Int8Options
from edgelstm.reference import reference_model

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from _tflite_helpers import COMBOS, feature_case, seeded  # noqa: E402
from _trained_corpus import bench  # noqa: E402

JV_RMSE_LSB, JV_MAX_FRAC = 0.25, 0.08
"""Measured 0.220 LSB and 0.070 of the half-width (int8 integer lowering 0.365 / 0.074)."""
BEATS = 0.7
"""int16x8's RMSE is below this fraction of the int8 integer lowering's (JV measured 0.60)."""


def _build(model, options):
    from edgelstm.targets.tflite import to_tflite

    return to_tflite(model, options)


def _options(entry, steps: int, batch: int = 1, **kw) -> CompileOptions:
    return CompileOptions(
        batch=batch, seq_len=steps, quantize="int16x8", calibration=entry.calibration, **kw
    )


@pytest.fixture(scope="module")
def jv():
    return bench.japanese_vowels()


@pytest.fixture(scope="module")
def yardstick(jv) -> tuple[float, float]:
    """The fused int8 file's output LSB and half-width: one yardstick for every row."""
    from edgelstm.measure.int8_error import compile_int8

    _, plan = compile_int8(jv.lstm_only, jv.calibration)
    lo, hi = plan.output.real_range
    return plan.output.scale, (hi - lo) / 2


def test_japanese_vowels_beats_the_int8_integer_lowering(jv, yardstick):
    row = bench.int16x8_row(jv, *yardstick)
    integer = bench.integer_row(jv, *yardstick)
    print(f"\njv int16x8: {row}\njv integer: {integer}")
    assert row["tflm"] == 0.0  # ran on LiteRT
    assert row["rmse_lsb"] <= JV_RMSE_LSB, row
    assert row["max_frac"] <= JV_MAX_FRAC, row
    assert row["flips"] == 0.0, row
    assert row["rmse_lsb"] <= BEATS * integer["rmse_lsb"], (row, integer)


ISSUE_BAR = (2.0, 0.1, 0.002)
"""The issue's bar: RMSE <= 2 output LSB, max <= 0.1 of the half-width, <= 0.2% flips."""


@pytest.mark.slow
def test_silero_vad_meets_the_bar(vad_entry):
    """The trained VAD LSTM (ReLU inputs, a few units with |c| ~ 50): no int8-input file can
    meet the bar (its input grid alone moves the output by 0.65 of the half-width); int16x8
    does, with compensated per-channel weights and per-unit cell scales. Measured 0.22 LSB,
    max 0.048, 0.16% flips (before both: 1.71 / 0.33 / 0.96%)."""
    from edgelstm.measure.int8_error import compile_int8

    _, plan = compile_int8(vad_entry.lstm_only, vad_entry.calibration)
    lo, hi = plan.output.real_range
    row = bench.int16x8_row(vad_entry, plan.output.scale, (hi - lo) / 2)
    print(f"\nvad int16x8: {row}")
    rmse, frac, flips = ISSUE_BAR
    assert row["tflm"] == 0.0  # ran on LiteRT
    assert row["rmse_lsb"] <= rmse, row
    assert row["max_frac"] <= frac, row
    assert row["flips"] <= flips, row


@pytest.mark.slow
def test_silero_vad_per_unit_cell_scales_carry_the_accuracy(vad_entry, monkeypatch):
    """Ablation on LiteRT: one cell scale for every unit (2^-8, set by the few |c| ~ 50
    units) integrates f*c's rounding over the cells' long memory; per-unit scales remove
    it. Measured: max error 0.425 vs 0.048 on outputs in [-1, 1]."""
    from edgelstm.targets.tflite.unfused import iranges

    lstm, x = vad_entry.lstm_only, vad_entry.held_out
    ref = reference_model(lstm, x).output

    def worst() -> float:
        data = bench.int16x8_file(lstm, vad_entry, 1, x.shape[0])
        return float(np.abs(bench.run_float_io(data, x) - ref).max())

    per_unit = worst()
    monkeypatch.setattr(iranges, "MAX_UNIT_SHIFT", 0)
    shared = worst()
    print(f"\nvad int16x8 max error: per-unit cell scales {per_unit:.3f}, one {shared:.3f}")
    assert per_unit <= 0.1
    assert shared >= 3 * per_unit


def test_char_lm_meets_rmse_and_max(yardstick_char_lm):
    """The char LM: RMSE and max within the bar; its flips are bounded by its int8 weights
    (float64 reference with only the LSTM weights int8, compensated per channel: 0.44% of
    6,400 held-out steps flip; 6.5% of steps have a top-two logit gap below 0.1) — int16x8
    measured 0.44% there, 0.25% on these 800."""
    entry, lsb, half = yardstick_char_lm
    row = bench.int16x8_row(entry, lsb, half)
    print(f"\nchar_lm int16x8: {row}")
    assert row["rmse_lsb"] <= ISSUE_BAR[0], row
    assert row["max_frac"] <= ISSUE_BAR[1], row
    assert row["flips"] <= 0.005, row  # measured 0.0025 (2 of 800)


def test_char_lm_with_two_weight_planes_meets_the_bar():
    """``Int8Options(weight_planes=2)``: each weight matrix (and the head) as two int8
    planes, ~15-bit weights on the same 16x8 kernels. On 6,400 held-out steps: 3 flips
    (0.016% measured: 1 of 6,400; one plane: 0.44%), RMSE 0.014 LSB."""
    from edgelstm.measure.int8_error import compile_int8

    entry = bench.char_lm(held=64)
    _, plan = compile_int8(entry.lstm_only, entry.calibration)
    lo, hi = plan.output.real_range
    row = bench.int16x8_row(entry, plan.output.scale, (hi - lo) / 2, planes=2)
    print(f"\nchar_lm int16x8, 2 weight planes, 6,400 steps: {row}")
    _, frac, flips = ISSUE_BAR
    assert row["rmse_lsb"] <= 0.1, row  # measured 0.014 (one plane 0.159)
    assert row["max_frac"] <= frac, row
    assert row["flips"] <= flips, row


def test_two_weight_planes_hold_every_weight_twice_in_int8(jv):
    """The second planes are int8 per-channel constants beside the first, each product a
    16x8 FULLY_CONNECTED; the file matches the float64 reference ~11x closer on JV."""
    one = _build(jv.lstm_only, _options(jv, 29))
    two = _build(jv.lstm_only, _options(jv, 29, int8=Int8Options(weight_planes=2)))
    info = _tensors(two)
    names = {t.name: t for op in info.ops for t in op.inputs if t is not None}
    fcs = [op for op in info.ops if op.op == "FULLY_CONNECTED"]
    assert all((op.inputs[0].dtype, op.inputs[1].dtype) == ("int16", "int8") for op in fcs)
    single = [op for op in _tensors(one).ops if op.op == "FULLY_CONNECTED"]
    assert len(fcs) == 2 * len(single)
    planes = [n for n in names if n.endswith("weights_lo")]
    assert {n.rsplit("/", 1)[-1] for n in planes} == {
        "input_weights_lo",
        "recurrent_weights_lo",
        "projection_weights_lo",
    }, planes
    assert all(names[n].dtype == "int8" for n in planes)
    x = jv.held_out[:1]
    ref = reference_model(jv.lstm_only, x).output
    err = [float(np.abs(bench.run_float_io(d, x) - ref).max()) for d in (one, two)]
    print(f"\njv max error: one plane {err[0]:.2e}, two {err[1]:.2e}")
    assert err[1] <= 0.5 * err[0]


def test_weight_planes_are_refused_where_they_do_not_apply():
    with pytest.raises(SpecError, match="weight_planes"):
        Int8Options(weight_planes=3)
    with pytest.raises(SpecError, match="--quantize int16x8"):
        CompileOptions(quantize="int8", int8=Int8Options(weight_planes=2))
    with pytest.raises(SpecError, match="all-integer"):
        CompileOptions(quantize="dynamic", int8=Int8Options(weight_planes=2))
    CompileOptions(quantize="int8", target="tflm", int8=Int8Options(weight_planes=2))


@pytest.fixture(scope="module")
def yardstick_char_lm():
    from edgelstm.measure.int8_error import compile_int8

    entry = bench.char_lm()
    _, plan = compile_int8(entry.lstm_only, entry.calibration)
    lo, hi = plan.output.real_range
    return entry, plan.output.scale, (hi - lo) / 2


def _tensors(data: bytes):
    from edgelstm.inspect import inspect_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(data)
        return inspect_model(path)


def test_the_file_holds_int16_activations_and_int8_weights(jv):
    """int16 I/O (LiteRT's tensor details), every matrix product 16x8, no int8 activation."""
    from ai_edge_litert.interpreter import Interpreter

    data = _build(jv.model, _options(jv, 29, int8=Int8Options(io=True)))
    it = Interpreter(model_content=data)
    (inp,), outs = it.get_input_details(), it.get_output_details()
    assert inp["dtype"] == np.int16 and inp["quantization"][0] > 0
    assert [o["dtype"] for o in outs] == [np.int16]
    info = _tensors(data)
    fcs = [op for op in info.ops if op.op == "FULLY_CONNECTED"]
    assert fcs
    for op in fcs:
        x, w = op.inputs[0], op.inputs[1]
        assert (x.dtype, w.dtype, op.outputs[0].dtype) == ("int16", "int8", "int16"), op
    activations = [t for op in info.ops for t in op.outputs]
    assert not [t.name for t in activations if t.dtype in ("int8", "uint8")]
    # the default: float I/O around the int16 graph
    default = _tensors(_build(jv.lstm_only, _options(jv, 29)))
    assert default.inputs[0].dtype == "float32" and default.outputs[0].dtype == "float32"
    ops = [op.op for op in default.ops if op.subgraph == 0]
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"


def _outputs(data: bytes, x: np.ndarray) -> list[np.ndarray]:
    """Every output on LiteRT, dequantized (int8 I/O) or as they are (float I/O)."""
    from edgelstm.runtime.litert import LiteRTRunner

    runner = LiteRTRunner(data)
    outs = runner.run(np.asarray(x, np.float32))
    return [
        np.asarray(y, np.float64) if not s else (y.astype(np.float64) - z) * s
        for y, (s, z) in zip(outs, runner.output_quantization, strict=True)
    ]


def _errors(model, x, outs) -> tuple[float, float]:
    ref = reference_model(model, x)
    want = [ref.output] + [a for h, c in ref.states[-1] for a in (h, c)]
    diff = np.concatenate([(g - w).ravel() for g, w in zip(outs, want, strict=True)])
    return float(np.sqrt(np.mean(diff**2))), float(np.abs(diff).max())


SAMPLE = [c for c in COMBOS if not c[3]][::5]
"""Every fifth feature-matrix cell without layer norm (LiteRT): 5 cells."""


def test_feature_matrix_sample_on_litert():
    """Random cells (peephole, projection, CIFG, clips): every output (sequence, h, c) vs
    the float64 reference; int16x8's RMSE below the int8 integer lowering's, summed over
    the sample (a single tiny cell can tie)."""
    from edgelstm.targets.tflite.int8_choice import to_tflite_integer

    ours, theirs = [], []
    for combo in SAMPLE:
        rng = seeded("int16x8", *combo)
        model, x, _, _ = feature_case(rng, *combo)
        batch, steps = (x.shape[1], x.shape[0]) if model.time_major else x.shape[:2]
        cal = rng.normal(0, 1.5, (32, steps, model.n_input)).astype(np.float32)
        opts = CompileOptions(batch=batch, seq_len=steps, quantize="int16x8", calibration=cal)
        rmse, worst = _errors(model, x, _outputs(_build(model, opts), x))
        int8 = CompileOptions(batch=batch, seq_len=steps, quantize="int8", calibration=cal)
        base = _errors(model, x, _outputs(to_tflite_integer(model, int8), x))
        print(f"\n{combo}: int16x8 rmse {rmse:.2e} max {worst:.2e}; integer {base}")
        assert worst <= 0.02, combo  # measured <= 0.0066 (integer lowering: 0.020)
        ours.append(rmse)
        theirs.append(base[0])
    assert sum(ours) <= BEATS * sum(theirs), (ours, theirs)


def _stacked() -> tuple:
    """Two layers (bidirectional with peephole + projection, then go_backwards) and a
    softmax head; batch-major, batch 2, 7 steps."""
    from edgelstm.ir.model import DenseHead, LSTMLayer, LSTMModel
    from edgelstm.ir.spec import LSTMSpec
    from edgelstm.ir.weights import LSTMWeights

    def w(n_in: int, seed: int) -> LSTMWeights:
        spec = LSTMSpec(n_in, 8, n_output=4, peephole=True, projection=True)
        return LSTMWeights.random(spec, seed=seed, scale=0.7)

    first = LSTMLayer(w(5, 1), w(5, 2))
    second = LSTMLayer(w(first.n_output, 3), go_backwards=True)
    rng = np.random.default_rng(4)
    head = DenseHead(rng.normal(0, 0.5, (3, second.n_output)).astype(np.float32),
                     np.zeros(3, np.float32), "softmax")  # fmt: skip
    model = LSTMModel(layers=(first, second), head=head, return_sequences=True)
    cal = rng.normal(size=(32, 7, 5)).astype(np.float32)
    return model, cal, rng.normal(size=(2, 7, 5)).astype(np.float32)


def test_stacked_bidirectional_with_head():
    """Class probabilities of every step within 0.01 of float64 on LiteRT and on TFLM (int16
    I/O there, as an MCU app feeds it); measured max 5.2e-4 on both."""
    model, cal, x = _stacked()
    opts = CompileOptions(batch=2, seq_len=7, quantize="int16x8", calibration=cal)
    want = reference_model(model, x).output
    (got,) = _outputs(_build(model, opts), x)
    print(f"\nstacked on LiteRT: max {np.abs(got - want).max():.2e}")
    assert np.abs(got - want).max() <= 0.01
    pytest.importorskip("tflite_micro", reason="the tflm extra (tflite-micro) is not installed")
    from edgelstm.runtime.litert import LiteRTRunner
    from edgelstm.runtime.tflm import TFLMRunner

    data = _build(model, replace(opts, target="tflm", int8=Int8Options(io=True)))
    runner = LiteRTRunner(data)
    codes = np.rint(x / runner._input["quantization"][0]).astype(np.int16)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(data)
        (y,) = TFLMRunner(path).run(codes)
    got = y.astype(np.float64) * runner.output_quantization[0][0]
    print(f"stacked on TFLM: max {np.abs(got - want).max():.2e}")
    assert np.abs(got - want).max() <= 0.01


def test_layer_norm_runs_on_tflm():
    """Layer norm: refused on LiteRT, built for TFLM, which runs it within 0.05 of float64."""
    pytest.importorskip("tflite_micro", reason="the tflm extra (tflite-micro) is not installed")
    combo = next(c for c in COMBOS if c[3] and c[0])  # CIFG + layer norm
    rng = seeded("int16x8", *combo)
    model, x, _, _ = feature_case(rng, *combo)
    batch, steps = (x.shape[1], x.shape[0]) if model.time_major else x.shape[:2]
    cal = rng.normal(0, 1.5, (32, steps, model.n_input)).astype(np.float32)
    opts = CompileOptions(batch=batch, seq_len=steps, quantize="int16x8", calibration=cal)
    with pytest.raises(UnsupportedError, match="SQUARED_DIFFERENCE"):
        _build(model, opts)
    data = _build(model, replace(opts, target="tflm"))
    from edgelstm.runtime.tflm import TFLMRunner

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(data)
        outs = TFLMRunner(path).run(np.asarray(x, np.float32))
    rmse, worst = _errors(model, x, [np.asarray(o, np.float64) for o in outs])
    print(f"\nlayer norm on TFLM: rmse {rmse:.2e} max {worst:.2e}")
    assert worst <= 0.05


def test_tflm_agrees_with_litert(jv, yardstick):
    """The same int16-I/O file on both interpreters. Not bit-identical (some int16 kernel
    rounds differently: measured up to 5 int16 codes, 2^-13 each), but within one code of
    the int8 file's output grid everywhere."""
    pytest.importorskip("tflite_micro", reason="the tflm extra (tflite-micro) is not installed")
    from edgelstm.runtime.litert import LiteRTRunner
    from edgelstm.runtime.tflm import TFLMRunner

    data = _build(jv.lstm_only, _options(jv, 29, int8=Int8Options(io=True)))
    runner = LiteRTRunner(data)
    scale = runner._input["quantization"][0]
    x = jv.held_out[:3].astype(np.float64)
    codes = np.clip(np.rint(x / scale), -32768, 32767).astype(np.int16)
    on_litert = np.concatenate([runner.run(codes[i : i + 1])[0] for i in range(3)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(data)
        tflm = TFLMRunner(path)
        on_tflm = np.concatenate([tflm.run(codes[i : i + 1])[0] for i in range(3)])
    out_scale = runner.output_quantization[0][0]
    diff = np.abs(on_litert.astype(np.int64) - on_tflm) * out_scale / yardstick[0]
    print(f"\nint16 codes differ: {int((on_litert != on_tflm).sum())} of {diff.size}")
    assert np.rint(diff).max() <= 1
    assert np.mean(np.rint(diff) > 0) <= 0.02


def test_refusals(jv, tmp_path, capsys):
    with pytest.raises(CalibrationError, match="--calibration"):
        CompileOptions(seq_len=29, quantize="int16x8")
    with pytest.raises(SpecError, match="--seq-len"):
        CompileOptions(quantize="int16x8", calibration=jv.calibration)
    with pytest.raises(SpecError, match="lowering"):
        _options(jv, 29, int8=Int8Options(lowering="integer"))
    ln = bench.japanese_vowels("cifg_ln")
    with pytest.raises(UnsupportedError, match="--target tflm"):
        _build(ln.lstm_only, _options(ln, 29))
    from edgelstm import to_onnx

    with pytest.raises(UnsupportedError, match="MatMulInteger"):
        to_onnx(jv.lstm_only, _options(jv, 29))
    from edgelstm.cli.main import main

    out, cal = tmp_path / "m.tflite", tmp_path / "cal.npy"
    np.save(cal, jv.calibration[:8])
    args = ["compile", str(ROOT / "models" / "japanese_vowels_lstm.npz"), "-o", str(out)]
    args += ["--quantize", "int16x8"]
    assert main(args) == 2
    assert "--calibration" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, "--calibration", str(cal)]) == 2
    assert "--seq-len" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, "--calibration", str(cal), "--seq-len", "29"]) == 0
    assert "int16x8" in capsys.readouterr().out
    assert out.stat().st_size > 0
