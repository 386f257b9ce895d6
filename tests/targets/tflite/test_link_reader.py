"""A linked whole model is refused by the LSTM-only reader (never read half of it)."""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm import CompileOptions, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights
from edgelstm.errors import UnsupportedError
from edgelstm.targets.tflite import to_tflite
from edgelstm.targets.tflite.link import link_chain
from edgelstm.targets.tflite.reader import model_from_bytes


def _lstm(n_in: int, n: int, seed: int) -> bytes:
    spec = LSTMSpec(n_input=n_in, n_cell=n)
    weights = LSTMWeights.random(spec, np.random.default_rng(seed))
    model = LSTMModel([LSTMLayer(weights)], return_sequences=True)
    return to_tflite(model, CompileOptions(batch=1, seq_len=4))


def test_reader_refuses_a_linked_file_with_the_way_out():
    linked = link_chain([_lstm(3, 5, 0), _lstm(5, 4, 1)])
    with pytest.raises(UnsupportedError, match=r"linked from 2 segments.*open_runner"):
        model_from_bytes(linked)


def test_reader_still_reads_a_single_part_file():
    assert model_from_bytes(_lstm(3, 5, 0)).layers[0].forward.spec.n_cell == 5
