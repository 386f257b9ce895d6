"""An exact rewrite that lets the integer kernel run peepholes with a projection.

The full-integer kernel applies the peephole with vector length n_output instead of n_cell
(``VectorBatchVectorCwiseProductAccumulate(cell_to_gate_weights, n_output, ...)`` in
``CalculateLstmGateInteger8x8_16``), so with n_output < n_cell only the first n_output cells
get their peephole term (and with batch > 1 the rows are misaligned): 26-30 LSB errors.

Rewrite: give that direction n_output = n_cell by padding the projection with zero rows (and
the projection bias with zeros) and the recurrent weights with zero columns. The extra output
features are exactly 0 at every step (zero rows, zero bias; 0 is exact in int8), so they
contribute nothing to the gates, and the real features are unchanged. Whatever reads the
padded features gets zero columns in the same places: the next layer's input weights or the
head's kernel; a final model output drops them with one GATHER (``output_columns``).

Cost: the recurrent matmul and the output are n_cell wide instead of n_output. States
returned by ``return_state`` would be padded too, so that combination is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelstm.errors import UnsupportedError
from edgelstm.ir.model import DenseHead, LSTMLayer, LSTMModel
from edgelstm.ir.roles import GATES, name_of
from edgelstm.ir.spec import LSTMSpec
from edgelstm.ir.weights import LSTMWeights
from edgelstm.quant.support import TARGET


def needs_padding(spec: LSTMSpec) -> bool:
    """Peephole + projection to fewer outputs than cells: the kernel's peephole bug case."""
    return spec.peephole and spec.projection and spec.n_output < spec.n_cell


@dataclass(frozen=True)
class PaddedModel:
    """The rewritten model, and where the original features sit in its final output."""

    model: LSTMModel
    output_columns: np.ndarray | None
    """Indices of the real features in the last layer's padded output (None: no padding to
    undo at the output, e.g. a head absorbed it)."""


def _pad_direction(w: LSTMWeights) -> LSTMWeights:
    spec = w.spec
    n, p = spec.n_cell, spec.n_output
    tensors = dict(w.tensors)
    proj = np.zeros((n, n), dtype=np.float32)
    proj[:p] = w["projection_weights"]
    tensors["projection_weights"] = proj
    if spec.projection_bias:
        tensors["projection_bias"] = np.concatenate([w["projection_bias"], np.zeros(n - p)])
    for g in GATES:
        name = name_of("recurrent", g)
        if name in tensors:
            rec = np.zeros((n, n), dtype=np.float32)
            rec[:, :p] = w[name]
            tensors[name] = rec
    return LSTMWeights(LSTMSpec(**{**spec.to_dict(), "n_output": n}), tensors)


def _spread_inputs(w: LSTMWeights, columns: np.ndarray, width: int) -> LSTMWeights:
    """``w`` reading a padded input: its input weight columns moved to ``columns``."""
    tensors = dict(w.tensors)
    for g in GATES:
        name = name_of("weight", g)
        if name in tensors:
            wide = np.zeros((w.spec.n_cell, width), dtype=np.float32)
            wide[:, columns] = w[name]
            tensors[name] = wide
    return LSTMWeights(LSTMSpec(**{**w.spec.to_dict(), "n_input": width}), tensors)


def pad_for_int8(model: LSTMModel) -> PaddedModel:
    """Rewrite every direction that :func:`needs_padding` (a no-op model is returned as is)."""
    if not any(needs_padding(v.weights.spec) for v in model.walk()):
        return PaddedModel(model, None)
    if model.return_state and any(needs_padding(w.spec) for w in model.layers[-1].directions):
        raise UnsupportedError(
            TARGET,
            "return_state of a peephole layer with projection: int8 runs it with the "
            "projection padded to n_cell outputs, so its state would be padded too; "
            "use return_state=False or quantize='dynamic'",
        )
    layers: list[LSTMLayer] = []
    columns: np.ndarray | None = None  # real feature positions of the previous output
    width = model.n_input
    padded_dirs: list[str] = []
    for visit in model.walk_layers():
        directions = []
        out_cols, offset = [], 0
        for v in visit.directions:
            original = v.weights
            w = original if columns is None else _spread_inputs(original, columns, width)
            if needs_padding(w.spec):
                w = _pad_direction(w)
                padded_dirs.append(f"layer{v.k}/{v.name}")
            out_cols.append(np.arange(original.spec.n_output) + offset)
            offset += w.spec.n_output
            directions.append(w)
        new_cols = np.concatenate(out_cols)
        columns = None if offset == len(new_cols) else new_cols
        width = offset
        layer = visit.layer
        layers.append(
            LSTMLayer(*directions, go_backwards=layer.go_backwards, reverse=layer.reverse)
        )
    head = model.head
    if head is not None and columns is not None:
        kernel = np.zeros((head.units, width), dtype=np.float32)
        kernel[:, columns] = head.kernel
        head = DenseHead(kernel, head.bias, head.activation)
        columns = None
    provenance = dict(model.provenance)
    provenance["int8_projection_padding"] = (
        f"{', '.join(padded_dirs)}: projection padded to n_cell outputs with zero rows "
        "(exact; the integer kernel's peephole needs n_output == n_cell)"
    )
    padded = LSTMModel(
        tuple(layers),
        head=head,
        return_sequences=model.return_sequences,
        return_state=model.return_state,
        stateful=model.stateful,
        time_major=model.time_major,
        provenance=provenance,
    )
    return PaddedModel(padded, columns)
