"""``edgelstm verify``: metrics against the float64 reference, source recovery, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _verify_helpers import SEQ_LEN, SPEC, build_variants, cli, stderr_lines

from edgelstm import LSTMModel, LSTMWeights, reference_model
from edgelstm.cli.main import main
from edgelstm.errors import InputDataError, UnsupportedError
from edgelstm.measure.verify import error_stats, format_result, sample_steps, verify
from edgelstm.runtime.feeding import run_model
from edgelstm.runtime.select import open_runner

FLOAT_TOL = 1e-5


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    return build_variants(tmp_path_factory.mktemp("verify"))


def test_error_stats_values():
    expected = np.zeros((2, 4, 3))
    actual = expected.copy()
    actual[1, 2, 0] = 0.5
    stats = error_stats(actual + 1.0, expected + 1.0)
    assert stats.max_abs == pytest.approx(0.5)
    assert stats.rmse == pytest.approx(np.sqrt(0.25 / 24))
    assert stats.per_step_max_abs == pytest.approx([0, 0, 0.5, 0])
    assert 0.99 < stats.cosine < 1.0
    assert error_stats(expected, expected).cosine == 1.0  # both zero: identical
    with pytest.raises(UnsupportedError):
        error_stats(np.zeros((1, 2)), np.zeros((2, 1)))


def test_growth_and_sampled_steps():
    stats = error_stats(np.linspace(0, 1, 8)[None, :, None] + 1, np.ones((1, 8, 1)))
    # quarters of 8 steps are 2 steps: (6/7 + 1) / 2 over (0 + 1/7) / 2
    assert stats.per_step_max_abs[0] == 0 and stats.growth == pytest.approx(13.0)
    flat = error_stats(np.r_[1, 1, 1, 1.5][None, :, None], np.ones((1, 4, 1)))
    assert flat.growth == float("inf")
    assert sample_steps(100) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert sample_steps(3) == [0, 1, 2]


def test_float_tflite_recovers_source_from_provenance(variants):
    r = verify(variants["float"], sequences=3)
    assert "digest match" in r.reference and r.quantization == "float"
    assert r.max_abs < FLOAT_TOL and r.cosine > 0.999999
    assert r.input_shape[0] == 3  # batch-1 model fed in 3 chunks
    assert len(r.error.per_step_max_abs) == r.input_shape[1]
    assert r.max_lsb is None and r.passed is None


def test_chunked_run_equals_reference_per_sequence(variants):
    x = np.random.default_rng(5).standard_normal((3, 7, SPEC.n_input)).astype("f4")
    with open_runner(variants["float"]) as runner:
        y = run_model(runner, x)
        again = run_model(runner, x)  # state was reset between runs
    ref = reference_model(LSTMModel.of(LSTMWeights.random(SPEC, seed=7)), x).output
    np.testing.assert_allclose(y, ref, atol=FLOAT_TOL)
    np.testing.assert_array_equal(y, again)


def test_onnx_against_explicit_source(variants):
    r = verify(variants["onnx"], variants["npz"], seq_len=6)
    assert r.backend == "ort" and "(given)" in r.reference
    assert r.max_abs < FLOAT_TOL and r.input_shape[1] == 6


def test_time_major_model(variants):
    r = verify(variants["time_major"], variants["npz"])
    assert r.max_abs < FLOAT_TOL


def test_dynamic_models_err_more_but_stay_close(variants):
    for key in ("dynamic", "onnx_dynamic"):
        r = verify(variants[key], tolerance=0.1)
        assert r.quantization == "dynamic"
        assert 1e-5 < r.max_abs < 0.1 and r.passed


def test_int8_error_in_lsb(variants):
    if variants["int8"] is None:
        pytest.skip("full-int8 emission not available in this build")
    r = verify(variants["int8"], variants["npz"])
    assert r.quantization == "int8" and r.output_scale
    assert r.max_lsb == pytest.approx(r.max_abs / r.output_scale)
    assert r.max_lsb < 20
    assert "LSB" in format_result(r)


def test_data_file_and_json(variants, tmp_path, capsys):
    x = np.random.default_rng(1).standard_normal((2, SEQ_LEN, SPEC.n_input)).astype("f4")
    np.save(tmp_path / "x.npy", x)
    argv = ["verify", str(variants["float"]), "--data", str(tmp_path / "x.npy"), "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_shape"] == [2, SEQ_LEN, SPEC.n_input] and data["error"]["max_abs"] < 1e-5


def test_data_uses_the_calibration_loader_rules(variants, tmp_path):
    """--data reads FILE.npz:KEY like --calibration; its errors stay InputDataError."""
    x = np.random.default_rng(2).standard_normal((3, SEQ_LEN, SPEC.n_input)).astype("f4")
    np.savez(tmp_path / "d.npz", a=x, b=x[:1])
    assert verify(variants["float"], data=f"{tmp_path / 'd.npz'}:b").input_shape[0] == 1
    with pytest.raises(InputDataError, match="pick one as"):
        verify(variants["float"], data=tmp_path / "d.npz")
    with pytest.raises(InputDataError, match="no array 'c'"):
        verify(variants["float"], data=f"{tmp_path / 'd.npz'}:c")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputDataError, match="pickle"):
        verify(variants["float"], data=tmp_path / "obj.npy")


def test_wrong_data_shape(variants, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((2, 5, SPEC.n_input + 1), "f4"))
    with pytest.raises(InputDataError):
        verify(variants["float"], data=tmp_path / "bad.npy")


def test_cli_exit_codes(variants, capsys):
    assert main(["verify", str(variants["dynamic"]), "--tolerance", "1e-9"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["verify", str(variants["dynamic"]), "--tolerance", "0.5"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_cli_bad_file_exit_2_one_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"definitely not a flatbuffer")
    proc = cli("verify", str(bad))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("edgelstm verify: error:")
    missing = cli("verify", str(tmp_path / "missing.onnx"))
    assert missing.returncode == 2 and "not found" in stderr_lines(missing)[0]


@pytest.mark.tf
def test_keras_source_runs_the_framework_too(tmp_path):
    """A tf-keras .h5 source: compile it, then verify shows edgelstm's and Keras's error."""
    tf_keras = pytest.importorskip("tf_keras")
    from edgelstm.importers.load import load_source
    from edgelstm.ir.options import CompileOptions
    from edgelstm.targets.tflite import save_tflite

    inp = tf_keras.Input((SEQ_LEN, 3), batch_size=1)
    model = tf_keras.Model(inp, tf_keras.layers.LSTM(8, return_sequences=True)(inp))
    model.save(tmp_path / "src.h5")
    save_tflite(load_source(tmp_path / "src.h5"), tmp_path / "m.tflite", CompileOptions())
    r = verify(tmp_path / "m.tflite", tmp_path / "src.h5", seq_len=SEQ_LEN)
    assert r.framework and r.framework_error is not None
    assert r.max_abs < FLOAT_TOL and r.framework_error.max_abs < FLOAT_TOL


@pytest.mark.torch
def test_torch_source_runs_the_framework_too(tmp_path):
    torch = pytest.importorskip("torch")
    from edgelstm.importers.load import load_source
    from edgelstm.ir.options import CompileOptions
    from edgelstm.targets.tflite import save_tflite

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 6, num_layers=2, batch_first=True, proj_size=2)
    torch.save(lstm.state_dict(), tmp_path / "src.pt")
    save_tflite(load_source(tmp_path / "src.pt"), tmp_path / "m.tflite", CompileOptions())
    r = verify(tmp_path / "m.tflite", tmp_path / "src.pt", seq_len=5)
    assert r.framework == "torch" and r.framework_error.max_abs < FLOAT_TOL
    assert r.max_abs < FLOAT_TOL and r.output_shape == [8, 5, 2]
