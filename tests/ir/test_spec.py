"""LSTMSpec validation: every bad field raises SpecError naming the field."""

from __future__ import annotations

import pytest

from edgelstm import LSTMSpec, SpecError


def test_defaults_fill_n_output():
    spec = LSTMSpec(3, 8)
    assert spec.n_output == 8
    assert spec.describe() == "LSTM 3->8"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_input": 0, "n_cell": 4}, "n_input"),
        ({"n_input": 3, "n_cell": -1}, "n_cell"),
        ({"n_input": 3, "n_cell": 4.5}, "n_cell"),
        ({"n_input": True, "n_cell": 4}, "n_input"),
        ({"n_input": 3, "n_cell": 4, "n_output": 2}, "n_output"),
        ({"n_input": 3, "n_cell": 4, "cell_clip": -1.0}, "cell_clip"),
        ({"n_input": 3, "n_cell": 4, "cell_clip": float("nan")}, "cell_clip"),
        ({"n_input": 3, "n_cell": 4, "cell_clip": "big"}, "cell_clip"),
        ({"n_input": 3, "n_cell": 4, "proj_clip": 1.0}, "proj_clip"),
        ({"n_input": 3, "n_cell": 4, "projection_bias": True}, "projection_bias"),
        ({"n_input": 3, "n_cell": 4, "activation": "swish"}, "activation"),
        ({"n_input": 3, "n_cell": 4, "peephole": 1}, "peephole"),
    ],
)
def test_invalid_fields_name_the_field(kwargs, field):
    with pytest.raises(SpecError, match=rf"LSTMSpec\.{field}"):
        LSTMSpec(**kwargs)


def test_dict_round_trip_and_unknown_key():
    spec = LSTMSpec(3, 8, 4, projection=True, proj_clip=2.0, cell_clip=1.5, activation="relu")
    assert LSTMSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(SpecError, match="unknown fields"):
        LSTMSpec.from_dict({**spec.to_dict(), "forget_bias": 1.0})
