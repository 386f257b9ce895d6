"""Thin access to the TFLite flatbuffer schema shipped with ai-edge-litert.

The generated bindings (object API: ``ModelT``, ``TensorT``, ``OperatorT``, ...) are imported
from ``ai_edge_litert.schema_py_generated``, never copied. Importing this module does not
import TensorFlow.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgelstm.errors import EdgeLSTMError, ModelFileError

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

TensorType = schema.TensorType
BuiltinOperator = schema.BuiltinOperator
BuiltinOptions = schema.BuiltinOptions
ActivationFunctionType = schema.ActivationFunctionType

NUMPY_OF_TYPE: dict[int, np.dtype] = {
    TensorType.FLOAT32: np.dtype("<f4"),
    TensorType.FLOAT16: np.dtype("<f2"),
    TensorType.INT32: np.dtype("<i4"),
    TensorType.INT64: np.dtype("<i8"),
    TensorType.INT16: np.dtype("<i2"),
    TensorType.INT8: np.dtype("i1"),
    TensorType.UINT8: np.dtype("u1"),
    TensorType.BOOL: np.dtype("?"),
}
"""Tensor types whose buffers edgelstm reads or writes, with their little-endian numpy dtype."""

TYPE_OF_NUMPY: dict[str, int] = {
    "float32": TensorType.FLOAT32,
    "float16": TensorType.FLOAT16,
    "int32": TensorType.INT32,
    "int64": TensorType.INT64,
    "int16": TensorType.INT16,
    "int8": TensorType.INT8,
    "uint8": TensorType.UINT8,
    "bool": TensorType.BOOL,
}

ACTIVATION_OF_NAME: dict[str, int] = {
    "tanh": ActivationFunctionType.TANH,
    "relu": ActivationFunctionType.RELU,
    "relu6": ActivationFunctionType.RELU6,
    "relu_n1_to_1": ActivationFunctionType.RELU_N1_TO_1,
}
"""Cell/output activations the fused LSTM kernel computes correctly (see FIELD_NOTES)."""

NAME_OF_ACTIVATION: dict[int, str] = {v: k for k, v in ACTIVATION_OF_NAME.items()}
NAME_OF_ACTIVATION[ActivationFunctionType.NONE] = "linear"


def tensor_type(dtype: str | np.dtype | int) -> int:
    """The schema TensorType of a numpy dtype (or a TensorType passed through)."""
    if isinstance(dtype, int):
        return dtype
    return TYPE_OF_NUMPY[np.dtype(dtype).name]


def builtin_name(code: int) -> str:
    """Readable name of a BuiltinOperator code (for error messages)."""
    for name, value in vars(BuiltinOperator).items():
        if value == code and not name.startswith("_"):
            return name
    return f"builtin#{code}"


def load_model(data: bytes) -> schema.ModelT:
    """Unpack a whole .tflite flatbuffer into the object API (no validation)."""
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))


def decode_model(data: bytes, where: str = "tflite") -> schema.ModelT:
    """:func:`load_model` for untrusted bytes: the one place where flatbuffer decoding
    failures (out-of-bounds offsets and vector lengths surface as IndexError, struct.error,
    ValueError, ...) become a :class:`ModelFileError` naming ``where``."""
    data = bytes(data)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelFileError(f"{where}: not a TFLite flatbuffer (file identifier is not TFL3)")
    try:
        return load_model(data)
    except EdgeLSTMError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure of a corrupted file
        raise ModelFileError(
            f"{where}: truncated or corrupted TFLite flatbuffer ({type(exc).__name__}: {exc})"
        ) from None
