"""Importers: framework objects and files -> canonical :class:`~edgelstm.ir.model.LSTMModel`.

Each framework's gate order is converted through :mod:`edgelstm.ir.gate_orders`. TensorFlow and
PyTorch are imported inside the functions, never at ``import edgelstm``.
"""

from edgelstm.importers.keras import from_keras
from edgelstm.importers.onnx_lstm import from_onnx
from edgelstm.importers.tf_cell import from_tf_cell, from_tf_checkpoint
from edgelstm.importers.torch_lstm import from_torch

__all__ = ["from_keras", "from_onnx", "from_tf_cell", "from_tf_checkpoint", "from_torch"]
