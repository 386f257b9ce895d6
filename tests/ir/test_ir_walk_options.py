"""LSTMModel.walk (the one layer x direction traversal) and the typed CompileOptions groups."""

from __future__ import annotations

import dataclasses

import pytest

from edgelstm import LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, SpecError
from edgelstm.ir.options import CompileOptions, Int8Options, OnnxOptions, UnfusedOptions


def _w(n_input: int, seed: int) -> LSTMWeights:
    return LSTMWeights.random(LSTMSpec(n_input, 3), seed=seed)


MODEL = LSTMModel(
    (
        LSTMLayer(_w(2, 0), _w(2, 1)),  # bidirectional: 6 features out
        LSTMLayer(_w(6, 2), go_backwards=True),
        LSTMLayer(_w(3, 3), reverse=True),
    )
)


def test_walk_visits_every_direction_in_order_with_its_orientation():
    seen = [(v.k, v.d, v.name, v.runs_reversed, v.realigns, v.last_layer) for v in MODEL.walk()]
    assert seen == [
        (0, 0, "forward", False, False, False),
        (0, 1, "backward", True, True, False),
        (1, 0, "forward", True, False, False),  # go_backwards: reversed order kept
        (2, 0, "forward", True, True, True),  # reverse: re-aligned to input time
    ]
    weights = [v.weights for v in MODEL.walk()]
    assert weights == [w for layer in MODEL.layers for w in layer.directions]
    assert all(v.layer is MODEL.layers[v.k] for v in MODEL.walk())


def test_walk_layers_groups_the_same_visits_per_layer():
    layers = list(MODEL.walk_layers())
    assert [(lv.k, lv.last, len(lv.directions)) for lv in layers] == [
        (0, False, 2),
        (1, False, 1),
        (2, True, 1),
    ]
    assert all(lv.layer is MODEL.layers[lv.k] for lv in layers)
    flat = [(v.k, v.d) for lv in layers for v in lv.directions]
    assert flat == [(v.k, v.d) for v in MODEL.walk()]


def test_option_groups_default_and_survive_replace():
    options = CompileOptions(quantize="int8", int8=Int8Options(io=True, estimator="minmax"))
    assert options.onnx == OnnxOptions() and options.unfused == UnfusedOptions()
    moved = dataclasses.replace(options, batch=4)
    assert moved.int8 == Int8Options(io=True, estimator="minmax") and moved.batch == 4
    hash(CompileOptions(int8=Int8Options(estimator={"input": "minmax"})))  # still hashable


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: OnnxOptions(recurrence="while"), ("recurrence", "'while'")),
        (lambda: UnfusedOptions(schedule="sometimes"), ("schedule", "'sometimes'")),
        (lambda: UnfusedOptions(chunk=0), ("chunk", "0")),
        (lambda: UnfusedOptions(segment=True), ("segment", "True")),
        (lambda: CompileOptions(onnx={"recurrence": "loop"}), ("onnx", "OnnxOptions", "dict")),
    ],
)
def test_bad_option_values_name_the_field(make, words):
    with pytest.raises(SpecError) as info:
        make()
    assert all(w in str(info.value) for w in words), str(info.value)


def test_old_extra_dict_still_sets_the_int8_group():
    with pytest.warns(DeprecationWarning, match="Int8Options"):
        options = CompileOptions(extra={"int8_io": True, "estimator": "minmax"})
    assert options.int8 == Int8Options(io=True, estimator="minmax")
    with pytest.warns(DeprecationWarning), pytest.raises(SpecError, match="int8_oi"):
        CompileOptions(extra={"int8_oi": True})  # a typo is refused, not ignored
