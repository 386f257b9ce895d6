"""inspect on linked whole models (segments listed) and TFLM verdicts on dynamic shapes."""

from __future__ import annotations

import numpy as np

from edgelstm import CompileOptions, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights
from edgelstm.inspect import format_info, inspect_model
from edgelstm.targets.tflite import to_tflite
from edgelstm.targets.tflite.link import link_chain


def _lstm(n_in: int, n: int, seed: int, batch: int | None) -> bytes:
    weights = LSTMWeights.random(LSTMSpec(n_input=n_in, n_cell=n), np.random.default_rng(seed))
    model = LSTMModel([LSTMLayer(weights)], return_sequences=True)
    return to_tflite(model, CompileOptions(batch=batch, seq_len=4))


def test_linked_file_lists_its_segments(tmp_path):
    path = tmp_path / "linked.tflite"
    path.write_bytes(link_chain([_lstm(3, 5, 0, 1), _lstm(5, 4, 1, 1)]))
    text = format_info(inspect_model(path))
    assert "segments: 2 parts linked into one graph" in text
    assert text.count("edgelstm (fused LSTMs)") == 2


def test_dynamic_batch_file_does_not_load_on_tflm(tmp_path):
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(_lstm(3, 5, 0, None))
    text = format_info(inspect_model(path))
    assert "loads on TFLM: no (input" in text
    assert "--seq-len T" in text


def test_cli_inspect_prints_the_arena_measured_on_tflm(tmp_path, capsys):
    """The CLI measures the arena on TFLite Micro itself when the tflm extra is installed."""
    import pytest

    pytest.importorskip("tflite_micro")
    from edgelstm.cli.main import main
    from edgelstm.runtime.tflm import min_arena

    path = tmp_path / "fixed.tflite"
    path.write_bytes(_lstm(3, 5, 0, 1))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"TFLM arena: {min_arena(path):,} B (measured on TFLite Micro" in out
