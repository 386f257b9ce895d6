"""verify's input layout (checked, stated, ``--time-major``) and which reference it used."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _verify_helpers import SEQ_LEN, SPEC, build_variants

from edgelstm import LSTMWeights, reference_model
from edgelstm.cli.main import main
from edgelstm.errors import InputDataError
from edgelstm.measure.verify import verify


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    return build_variants(tmp_path_factory.mktemp("layout"))


def _x(n: int = 3, steps: int = SEQ_LEN) -> np.ndarray:
    return np.random.default_rng(4).standard_normal((n, steps, SPEC.n_input)).astype("f4")


def test_time_major_data_on_a_fixed_t_model_is_refused_naming_the_flag(variants):
    tm = _x().transpose(1, 0, 2)  # [T, B, I] = [10, 3, 4]: would read as 10 sequences of 3
    with pytest.raises(InputDataError, match=r"\[10, 3, 4\].*T = 3.*T = 10.*--time-major"):
        verify(variants["int8"], data=tm)


def test_time_major_flag_reads_t_b_i(variants):
    x = _x()
    result = verify(variants["float"], data=x.transpose(1, 0, 2), time_major=True)
    assert result.input_shape == [3, SEQ_LEN, SPEC.n_input]
    assert result.layout.startswith("time-major [T, B, I]") and "3 sequences of 10" in result.layout
    # Independent check: the reference on the batch-major data, against the file's output.
    source = LSTMWeights.random(SPEC, seed=7)  # build_variants' weights
    want = reference_model(source, x).output
    assert result.error.max_abs < 1e-5
    assert verify(variants["float"], source, x).error.max_abs == result.error.max_abs
    assert np.abs(want).max() > 0.05


def test_time_major_flag_on_batch_major_data_of_a_fixed_t_model(variants):
    with pytest.raises(InputDataError, match="drop --time-major"):
        verify(variants["int8"], data=_x(4), time_major=True)


def test_wrong_width_names_i(variants):
    with pytest.raises(InputDataError, match=r"expected \[N, T, 4\], found \[3, 10, 5\]"):
        verify(variants["float"], data=np.zeros((3, 10, 5), "f4"))


def test_dynamic_t_says_the_layout_could_not_be_checked(variants):
    result = verify(variants["float"], data=_x())
    assert result.layout == "batch-major [N, T, I]: 3 sequences of 10 steps"
    assert any("--time-major" in n for n in result.notes)


def test_cli_time_major_and_layout_line(variants, tmp_path, capsys):
    np.save(tmp_path / "tm.npy", _x().transpose(1, 0, 2))
    argv = ["verify", str(variants["int8"]), "--data", str(tmp_path / "tm.npy")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--time-major" in err[0]
    assert main([*argv, "--time-major"]) == 0
    out = capsys.readouterr().out
    assert "data: time-major [T, B, I] (--time-major): 3 sequences of 10 steps" in out


def test_reference_is_the_provenance_source_when_found(variants, capsys):
    assert main(["verify", str(variants["float"])]) == 0
    assert "reference: float64 of source.npz (from provenance, digest match)" in (
        capsys.readouterr().out
    )


def test_reference_falls_back_to_own_weights_and_says_so(variants, tmp_path, capsys):
    lone = tmp_path / "lone.tflite"
    shutil.copy(variants["dynamic"], lone)  # its source.npz is not next to it
    assert main(["verify", str(lone)]) == 0
    out = capsys.readouterr().out
    assert "reference: float64 of lone.tflite's own weights (read back)" in out
    assert "provenance source 'source.npz' not found" in out and "--against" in out
