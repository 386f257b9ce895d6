"""``edgelstm compile`` options that only the CLI adds: --int8-io and the shared number types."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from edgelstm import LSTMSpec, LSTMWeights, save_npz
from edgelstm.cli.args import non_negative_int, positive_float, positive_int
from edgelstm.cli.main import main
from edgelstm.runtime import LiteRTRunner


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "cell.npz"
    save_npz(LSTMWeights.random(LSTMSpec(4, 8, peephole=True), seed=2), path)
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).normal(size=(32, 6, 4)))
    return path


def test_int8_io_writes_integer_graph_io(source, tmp_path):
    out = tmp_path / "m.tflite"
    argv = [
        "compile",
        str(source),
        "-o",
        str(out),
        "--seq-len",
        "6",
        "--quantize",
        "int8",
        "--calibration",
        str(tmp_path / "calib.npy"),
    ]
    assert main([*argv, "--int8-io"]) == 0
    runner = LiteRTRunner(out)
    assert np.dtype(runner._input["dtype"]) == np.int8
    assert runner.output_quantization[0][0] > 0  # scale and zero point live in the file
    assert main(argv) == 0  # default: float I/O around the integer graph
    assert np.dtype(LiteRTRunner(out)._input["dtype"]) == np.float32


@pytest.mark.parametrize("extra", [[], ["--quantize", "dynamic"]])
def test_int8_io_without_int8_is_refused(source, tmp_path, capsys, extra):
    out = tmp_path / "m.tflite"
    assert main(["compile", str(source), "-o", str(out), "--int8-io", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--int8-io applies to full-integer TFLite only" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("parse", "good", "bad"),
    [
        (positive_int, ["1", "29"], ["0", "-2", "1.5", "x"]),
        (non_negative_int, ["0", "3"], ["-1", "nan"]),
        (positive_float, ["1e-2", "3"], ["0", "-1", "nan", "inf", "x"]),
    ],
)
def test_number_types(parse, good, bad):
    for text in good:
        assert parse(text) == float(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            parse(text)
