"""``TFLiteConverter`` settings -> CompileOptions, and the boundary types of a split model.

No TensorFlow needed: settings are read as TensorFlow reads them (optimizations without
a representative dataset = dynamic range, with one = full integer).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm.errors import CalibrationError, SpecError
from edgelstm.whole.converter import Optimize, TFLiteConverter
from edgelstm.whole.keras_tflite import boundary_types
from edgelstm.whole.segments import KerasSegment, LstmSegment, WholeModel


def _conv(**settings) -> TFLiteConverter:
    conv = TFLiteConverter.from_keras_model(object())
    for name, value in settings.items():
        setattr(conv, name, value)
    return conv


def _samples():
    rng = np.random.default_rng(0)
    for _ in range(5):
        yield [rng.normal(size=(1, 4, 3)).astype(np.float32)]


def test_defaults_are_float():
    options, in_type, out_type = _conv().options()
    assert options.quantize == "none" and (in_type, out_type) == ("float32", "float32")


@pytest.mark.parametrize("entry", [Optimize.DEFAULT, "DEFAULT", "dynamic"])
def test_optimize_without_data_is_dynamic(entry):
    assert _conv(optimizations=[entry]).options()[0].quantize == "dynamic"


def test_representative_dataset_gives_int8_with_int8_io():
    options, in_type, out_type = _conv(
        optimizations=[Optimize.DEFAULT],
        representative_dataset=_samples,
        inference_input_type=np.int8,
        inference_output_type="int8",
    ).options()
    assert options.quantize == "int8" and options.int8.io
    assert options.calibration.shape == (5, 4, 3)
    assert (in_type, out_type) == ("int8", "int8")


def test_mixed_io_types_are_kept_apart():
    options, in_type, out_type = _conv(
        optimizations=["int8"], representative_dataset=_samples, inference_input_type=np.int8
    ).options()
    assert (in_type, out_type) == ("int8", "float32") and not options.int8.io


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"inference_input_type": np.int8}, SpecError, "full-integer"),
        ({"inference_output_type": np.uint8}, SpecError, "uint8"),
        ({"optimizations": ["int8"]}, CalibrationError, "representative_dataset"),
        ({"optimizations": ["fast"]}, SpecError, "Optimize.DEFAULT"),
        (
            {"optimizations": ["int8"], "representative_dataset": lambda: iter(())},
            CalibrationError,
            "no samples",
        ),
    ],
)
def test_bad_settings(settings, error, match):
    with pytest.raises(error, match=match):
        _conv(**settings).options()


def _whole(kinds: str, input_dtype: str = "float32") -> WholeModel:
    segments = tuple(
        LstmSegment(None, (), (4, 3), (4, 3))
        if k == "L"
        else KerasSegment((), (4, 3), "float32", (4, 3))
        for k in kinds
    )
    return WholeModel(segments, "keras", (4,), input_dtype, (3,), None)


@pytest.mark.parametrize(
    ("kinds", "dtype", "quantize", "io", "want"),
    [
        ("TLT", "float32", "none", ("float32",) * 2, ["float32"] * 4),
        ("TLT", "int32", "int8", ("float32",) * 2, ["int32", "int8", "int8", "float32"]),
        ("TLT", "float32", "int8", ("int8",) * 2, ["int8"] * 4),
        # an LSTM first with a float model input: its I/O is one flag, so both sides float
        ("LT", "float32", "int8", ("float32",) * 2, ["float32", "float32", "float32"]),
        ("LT", "float32", "int8", ("int8",) * 2, ["int8", "int8", "int8"]),
        ("TL", "float32", "int8", ("int8", "float32"), ["int8", "float32", "float32"]),
    ],
)
def test_boundary_types(kinds, dtype, quantize, io, want):
    assert boundary_types(_whole(kinds, dtype), quantize, io) == want


@pytest.mark.parametrize("latency", [False, True])
def test_optimize_latency_reaches_the_whole_model_search(monkeypatch, latency):
    """``converter.optimize_latency`` asks keras_to_tflite for the measured lowering search."""
    import edgelstm.whole.keras_tflite as kt

    seen = {}

    def fake(model, options, *, io_types, optimize):
        seen["optimize"] = optimize
        return type("R", (), {"data": b"tflite"})()

    monkeypatch.setattr(kt, "keras_to_tflite", fake)
    assert _conv(optimize_latency=latency).convert() == b"tflite"
    assert seen["optimize"] == ("latency" if latency else None)
