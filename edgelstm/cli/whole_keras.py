"""``edgelstm compile model.keras`` for whole Keras models (LSTMs between other layers).

A pure LSTM stack (with at most one Dense head) is left to the LSTM-only path (None), so its
behaviour is unchanged; any other chain model is converted whole: its LSTMs fused by
edgelstm, the other layers by TensorFlow's converter, linked into one .tflite
(:mod:`edgelstm.whole.keras_tflite`); ``-o X.onnx`` goes to
:mod:`edgelstm.whole.keras_onnx`. ``--optimize latency`` (.tflite, float or dynamic)
measures each LSTM fused vs unfused in the linked file and keeps the fastest that is as
exact as the default (``--max-error`` to allow more; ``--data`` the model's inputs to verify
on; :mod:`edgelstm.whole.optimize`). TensorFlow loads only inside :func:`run`.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import UnsupportedError


def _refuse_flags(args: argparse.Namespace) -> None:
    """Flags the whole-model path does not take, each with the way out."""
    refused = {
        "streaming": "--streaming keeps an LSTM's state between invokes",
        "time_major": "--time-major changes the LSTM's layout",
        "lstm": "--lstm selects an ONNX node",
        "batch_first": "--batch-first is for PyTorch state_dicts",
        "prefix": "--prefix is for PyTorch state_dicts",
        "head": "--head is for PyTorch state_dicts",
    }
    for flag, why in refused.items():
        if getattr(args, flag, None) not in (None, False):
            raise UnsupportedError(
                "compile",
                f"{why}; for a whole Keras model (LSTMs between other layers) it does not "
                "apply: drop it, or compile the LSTM alone from Python with "
                "edgelstm.from_keras(model.get_layer(NAME))",
            )
    if getattr(args, "quantize", None) == "int16x8":
        raise UnsupportedError(
            "compile",
            "--quantize int16x8 applies to LSTM-only sources (the all-integer lowering of one "
            "LSTM stack); for a whole Keras model use --quantize int8, or compile the LSTM "
            "alone (edgelstm.from_keras(model.get_layer(NAME)))",
        )
    if getattr(args, "int8_lowering", "fused") not in (None, "fused"):
        raise UnsupportedError(
            "compile",
            "--int8-lowering: a whole Keras model's LSTMs take the fused int8 op; drop the "
            "flag, or compile the LSTM alone (edgelstm.from_keras(model.get_layer(NAME)))",
        )
    if getattr(args, "target", "tflite") != "tflite":
        raise UnsupportedError(
            "compile",
            "--target tflm: whole Keras models compile for LiteRT (--target tflite) only; "
            "compile the LSTM alone for TFLite Micro",
        )


@contextlib.contextmanager
def _converter_quiet() -> Iterator[None]:
    """TF's converter prints C++ lines ("fully_quantize: 0, ...") on fd 2: under the CLI
    (not --debug) they are not edgelstm's output; errors still arrive as exceptions."""
    from edgelstm.importers import quiet

    if not quiet._ENABLED:
        yield
        return
    with quiet.native_stderr_silenced():
        yield


def _lstm_only(model: Any) -> bool:
    """Whether the LSTM-only path takes ``model`` (a pure LSTM stack and one Dense head)."""
    from edgelstm.importers.keras import from_keras

    try:
        from_keras(model)
    except UnsupportedError:
        return False
    return True


def _onnx(model: Any, options: Any) -> bytes:
    try:
        from edgelstm.whole.keras_onnx import keras_to_onnx
    except ImportError as exc:
        raise UnsupportedError(
            "onnx",
            f"ONNX from a whole Keras model is not available in this build ({exc}); "
            "use -o X.tflite, or compile the LSTM alone",
        ) from None
    result = keras_to_onnx(model, options)
    if isinstance(result, bytes):
        return result
    return result.SerializeToString() if hasattr(result, "SerializeToString") else result.data


def _raw_calibration(source: str) -> np.ndarray:
    """The calibration array as stored: a whole model's input may be [N, T] token ids, which
    the LSTM-only loader's [N, T, I] check refuses (the shape is checked against the model
    in :func:`edgelstm.whole.keras_tflite.convert_parts`)."""
    from edgelstm.measure.data import _read_array
    from edgelstm.quant.batches import CALIBRATION

    path, key = Path(source), None
    if not path.exists() and ".npz:" in source:
        head, key = source.rsplit(":", 1)
        path = Path(head)
    if path.suffix.lower() not in (".npy", ".npz") or not path.is_file():
        from edgelstm.errors import CalibrationError

        raise CalibrationError(f"{source}: calibration file must be an existing .npy or .npz")
    return _read_array(path, key, CALIBRATION)


def _optimize_data(source: str | None) -> np.ndarray | None:
    """``--data`` for ``--optimize latency``: the model's own inputs (token ids may be
    [N, T]); the shape is checked against the model in :mod:`edgelstm.whole.optimize`."""
    if source is None:
        return None
    from edgelstm.errors import InputDataError
    from edgelstm.measure.data import _read_array
    from edgelstm.quant.batches import INPUT_DATA

    path, key = Path(source), None
    if not path.exists() and ".npz:" in source:
        head, key = source.rsplit(":", 1)
        path = Path(head)
    if path.suffix.lower() not in (".npy", ".npz") or not path.is_file():
        raise InputDataError(f"{source}: --data must be an existing .npy or .npz")
    return _read_array(path, key, INPUT_DATA)


def run(args: argparse.Namespace, out: Path) -> int | None:
    """Compile a whole Keras model; None when it is a pure LSTM stack (LSTM-only path)."""
    from edgelstm._io import write_bytes_atomic
    from edgelstm.importers.keras import _load
    from edgelstm.ir.options import CompileOptions, Int8Options, OnnxOptions

    model = _load(Path(args.source))
    if _lstm_only(model):
        return None
    _refuse_flags(args)
    calibration = None
    if getattr(args, "calibration", None) is not None:
        calibration = _raw_calibration(args.calibration)
    options = CompileOptions(
        batch=args.batch or None,
        seq_len=args.seq_len,
        quantize=args.quantize or "none",
        calibration=calibration,
        source=Path(args.source).name,
        int8=Int8Options(io=bool(args.int8_io)),
        onnx=OnnxOptions(
            dynamic_priority=getattr(args, "onnx_dynamic_priority", None) or "accuracy"
        ),
    )
    optimize = getattr(args, "optimize", None)
    if optimize is not None and (out.suffix.lower() == ".onnx" or options.quantize == "int8"):
        raise UnsupportedError(
            "compile",
            "--optimize latency for a whole Keras model chooses each LSTM's TFLite lowering "
            "in float or --quantize dynamic: write -o X.tflite without --quantize int8, or "
            "drop --optimize",
        )
    if out.suffix.lower() == ".onnx":
        data = _onnx(model, options)
        write_bytes_atomic(out, data)
        print(f"wrote {out} ({len(data):,} bytes): whole Keras model, quantize={options.quantize}")
        return 0
    from edgelstm.whole.keras_tflite import keras_to_tflite

    with _converter_quiet():
        result = keras_to_tflite(
            model,
            options,
            optimize=optimize,
            max_error=getattr(args, "max_error", None),
            data=_optimize_data(getattr(args, "data", None)),
            runs=getattr(args, "runs", 100) or 100,
        )
    write_bytes_atomic(out, result.data)
    if result.optimize is not None:
        print(result.optimize.format())
    print(f"wrote {out} ({len(result.data):,} bytes): {result.summary()}")
    return 0
