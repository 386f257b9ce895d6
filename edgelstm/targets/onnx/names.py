"""Names of the graph inputs and outputs of every model the ONNX emitter writes.

The model contract (shared with :mod:`edgelstm.runtime.ort`):

* inputs: ``x`` first ([B, T, I], or [T, B, I] when time-major); then, only in the
  streaming form (``OnnxOptions(state_inputs=True)`` or a stateful model), for every layer
  ``k`` and direction the required initial states ``layer{k}.h0`` [B, P] and ``layer{k}.c0``
  [B, N] (``layer{k}.backward.h0`` / ``.c0`` for a backward direction); then, only when
  asked (``OnnxOptions(sequence_lens=True)``, all-fused models), the required
  ``sequence_lens`` [B] int32. Stateless files start from zeros built into the graph.
  Older files had both as optional inputs with initializer defaults, which
  onnxruntime warns about; :class:`edgelstm.runtime.OrtRunner` runs both forms;
* outputs: ``y`` first (the output sequence, or the last step without return_sequences,
  after the head), then the final ``layer{k}.h`` / ``layer{k}.c`` of every direction.

This module is pure Python so the runtime can import it without importing onnx.
"""

from __future__ import annotations

INPUT = "x"
OUTPUT = "y"
SEQUENCE_LENS = "sequence_lens"


def _prefix(layer: int, direction: int) -> str:
    return f"layer{layer}" + (".backward" if direction else "")


def initial_state(layer: int, direction: int, which: str) -> str:
    """Graph input of the initial ``which`` ("h" or "c") of one direction."""
    return f"{_prefix(layer, direction)}.{which}0"


def final_state(layer: int, direction: int, which: str) -> str:
    """Graph output of the final ``which`` ("h" or "c") of one direction."""
    return f"{_prefix(layer, direction)}.{which}"
