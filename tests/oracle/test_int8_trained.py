"""Every int8 path on trained LSTMs (the corpus of ``tools/bench_int8_trained.py``).

Oracles: the float64 reference of the source weights, and LiteRT running the int8 file (the
``--explain`` replay must reproduce its codes exactly). Measured values are printed; the
issue's thresholds (RMSE <= 2 output LSB, max <= 0.1 of the output half-width, <= 0.2 %
decision flips) are asserted where they are met, and the rest is pinned near today's numbers
so a regression shows. The Silero VAD is fetched from the faster-whisper wheel (slow).
"""

from __future__ import annotations

import numpy as np
import pytest
from _trained_corpus import bench

from edgelstm.measure.explain_file import explain_int8
from edgelstm.quant.model_plan import quantize_model

# name -> (full int8 RMSE LSB bound, max-fraction bound, flips bound). The targets
# (2 LSB, 0.1, 0.002) where met; else today's value + margin (measured, compensated rounding:
# jv_cifg_ln max 0.32; char_lm flips 0.03 — 6.5% of its steps have a top-2 logit gap < 0.1,
# below the int8 logits' LSB of 0.13; vad 3.9 LSB, max 0.85, flips 0.011 — `--explain`: the
# Q3.12 gate partial sums saturate).
BOUNDS = {
    "jv": (2.0, 0.1, 0.002),
    "jv_cifg_ln": (2.0, 0.4, 0.002),
    "char_lm": (2.0, 0.1, 0.05),
    "vad": (5.0, 0.95, 0.02),
}


@pytest.fixture(scope="module")
def bundled():
    return [bench.japanese_vowels(), bench.japanese_vowels("cifg_ln"), bench.char_lm()]


def _check(entry) -> None:
    rows = bench.measure(entry)
    print(f"\n{entry.name}: " + "; ".join(f"{k}: {v}" for k, v in rows.items()))
    rmse_bound, frac_bound, flips_bound = BOUNDS[entry.name]
    comp, near = rows["compensated"], rows["nearest"]
    assert comp["rmse_lsb"] <= rmse_bound, comp
    assert comp["rmse_lsb"] <= 1.02 * near["rmse_lsb"], (comp, near)  # the default helps
    assert comp["max_frac"] <= frac_bound, comp
    assert comp["flips"] <= flips_bound, comp
    # hybrid and ONNX dynamic: same int8 weights, float activations; reported, bounded loosely
    for path in ("hybrid", "onnx_dynamic"):
        assert rows[path]["rmse_lsb"] <= max(2.0, 2 * near["rmse_lsb"]), (path, rows[path])
    # ONNX dynamic (scheme measured on the calibration data) never less accurate than
    # onnxruntime's quantize_dynamic (defaults) of the same float LSTM on held-out data (#17).
    # Measured: ratio 1.00 on the composites (jv 0.171, jv_cifg_ln 0.309, char_lm 0.182 LSB:
    # ORT's file kept, its Scan bodies float); the VAD's fused LSTM takes the compensated
    # full-range codes (int8-comp): 1.03 vs ORT's 6.82 LSB (ratio 0.15; uint8 was 3.73).
    onnx_row = rows["onnx_dynamic"]
    assert onnx_row["rmse_lsb"] <= 1.02 * onnx_row["ort_rmse_lsb"], onnx_row
    if entry.name == "vad":
        assert onnx_row["ratio"] <= 0.3, onnx_row
    # hybrid with calibration data: compensated codes (measured: VAD 6.56 -> 0.46 LSB, max
    # 0.99 -> 0.056; JV 0.26 -> 0.16; JV CIFG+LN 0.32 -> 0.17; char LM 0.51 -> 0.35)
    cal, plain = rows["hybrid_cal"], rows["hybrid"]
    assert cal["rmse_lsb"] <= 0.8 * plain["rmse_lsb"], (cal, plain)
    assert cal["rmse_lsb"] <= 1.0 and cal["max"] <= 0.1, cal


@pytest.mark.parametrize("index", [0, 1, 2], ids=["jv", "jv_cifg_ln", "char_lm"])
def test_bundled_models(bundled, index):
    _check(bundled[index])


@pytest.mark.parametrize("index", [0, 1], ids=["jv", "jv_cifg_ln"])
def test_explain_replays_the_trained_file_exactly(bundled, index):
    entry = bundled[index]
    lstm = entry.lstm_only
    plan = quantize_model(lstm, entry.calibration)
    report = explain_int8(lstm, entry.held_out[:64], plan=plan, ablate=False)
    print(f"\n{entry.name}:\n{report.format()}")
    assert report.runtime_mismatch == 0.0


@pytest.mark.slow
def test_silero_vad(vad_entry):
    _check(vad_entry)


@pytest.mark.slow
def test_silero_vad_explain_names_the_gates(vad_entry):
    """On the VAD the kernel replay is exact and the diagnosis is the Q3.12 gates."""
    lstm = vad_entry.lstm_only
    plan = quantize_model(lstm, vad_entry.calibration)
    report = explain_int8(lstm, vad_entry.held_out, plan=plan)
    print(f"\nvad:\n{report.format()}")
    assert report.runtime_mismatch == 0.0
    assert report.culprit == "gates"
    assert report.ablations["all integer stages"][0] < 0.25 * report.output_rmse_lsb
    assert np.isfinite(report.output_max)
