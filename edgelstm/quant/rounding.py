"""Error-compensating rounding of a gate's int8 weights on calibration statistics.

Rounding each weight to its nearest code is what per-tensor int8 does by default, and on
trained LSTMs it is the whole int8 error: ``edgelstm verify --explain`` on the Silero VAD
LSTM finds the kernel's integer stages (gate accumulators, cell, state) cost nothing
measurable, while the float reference run with the int8 weights dequantized shows the
file's full error (weights with max/std of 6-10 get ~15 codes per standard deviation).

The kernel fixes the grid (one symmetric scale per tensor), not the rounding. This module
chooses the rounding: the gate pre-activation ``z = W x + R h + b`` is a linear function of
``u = [x; h_prev; 1]``, so with the calibration's second moments ``H = E[u u^T]`` the
codes are chosen column by column, each column's rounding error compensated on the columns
not yet rounded (optimal brain quantization / GPTQ: Frantar et al., 2023). The bias column is
last and kept at its fine int32 grid, so it absorbs the mean of the remaining error (the bias
correction). Projection weights read the hidden ``m`` (``H = E[m m^T]``).
"""

from __future__ import annotations

import numpy as np

from edgelstm.quant.tensor import QuantTensor, quantize_symmetric

DAMPING = 0.01
"""Fraction of the mean diagonal added to H (keeps the inverse well conditioned)."""
BLOCK = 128
"""Columns rounded between two updates of the rest (the result does not depend on it)."""


_LAST_FACTOR: list[tuple[np.ndarray, int, np.ndarray, np.ndarray | None]] = []
"""The last :func:`_factor` (one entry): a direction's gates all read the same H."""


def _factor(hessian: np.ndarray, exact_columns: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The column order and the upper Cholesky factor of the damped, reordered H^-1 (None
    when not positive definite). Computed once per distinct H: an LSTM direction's gates
    share one H, and the factorisation is most of the rounding's time at 1024 units."""
    hess = np.asarray(hessian, dtype=np.float64)
    for key, exact, order, upper in _LAST_FACTOR:
        if exact == exact_columns and key.shape == hess.shape and np.array_equal(key, hess):
            return order, upper
    h = np.array(hess)
    cols = h.shape[1]
    dead = np.diag(h) <= 0  # never seen in calibration: rounded to nearest, kept (not zeroed:
    h[dead, dead] = 1.0  # held-out data may use them, e.g. a character absent from the text)
    h += DAMPING * float(np.mean(np.diag(h))) * np.eye(cols)
    rounded = cols - exact_columns
    # Largest second moment first (GPTQ's "act order"): their errors are compensated most.
    order = np.concatenate([np.argsort(-np.diag(h)[:rounded], kind="stable"),
                            np.arange(rounded, cols)])  # fmt: skip
    try:
        upper: np.ndarray | None = np.linalg.cholesky(np.linalg.inv(h[np.ix_(order, order)])).T
    except np.linalg.LinAlgError:
        upper = None
    _LAST_FACTOR[:] = [(hess.copy(), exact_columns, order, upper)]
    return order, upper


def compensated_rounding(
    weights: np.ndarray,
    scales: np.ndarray,
    hessian: np.ndarray,
    *,
    qmax: int = 127,
    exact_columns: int = 0,
) -> np.ndarray:
    """Quantize the columns of ``weights`` [rows, cols] (column j to grid ``scales[j]``, or
    element (i, j) to ``scales[i, j]`` for per-row grids such as per-channel weights; codes in
    ±``qmax``) minimising ``E[((W - Q) u)^2]`` for ``E[u u^T] = hessian``.

    The last ``exact_columns`` are not rounded (they absorb the compensation). Returns the
    real-valued quantized matrix Q (codes * scales; exact columns as adjusted floats).
    """
    w = np.array(weights, dtype=np.float64)
    cols = w.shape[1]
    rounded = cols - exact_columns
    order, upper = _factor(hessian, exact_columns)
    grid = np.broadcast_to(np.asarray(scales, np.float64), w.shape)  # [rows, cols]
    w, s = w[:, order], grid[:, order]
    if upper is None:  # not positive definite even damped: nearest codes
        out = np.array(weights, dtype=np.float64)
        sc = grid[:, :rounded]
        out[:, :rounded] = np.clip(np.rint(out[:, :rounded] / sc), -qmax, qmax) * sc
        return out
    q = np.empty_like(w)
    for start in range(0, cols, BLOCK):  # GPTQ's lazy batch updates: one GEMM per block
        stop = min(start + BLOCK, cols)
        block, u = w[:, start:stop].copy(), upper[start:stop, start:stop]
        errors = np.empty_like(block)
        for i in range(stop - start):
            j, col = start + i, block[:, i]
            if j < rounded:
                q[:, j] = np.clip(np.rint(col / s[:, j]), -qmax, qmax) * s[:, j]
            else:
                q[:, j] = col
            errors[:, i] = (col - q[:, j]) / u[i, i]
            block[:, i + 1 :] -= np.outer(errors[:, i], u[i, i + 1 :])
        w[:, stop:] -= errors @ upper[start:stop, stop:]
    out = np.empty_like(q)
    out[:, order] = q
    return out


def compensated_channels(
    blocks: list[np.ndarray], hessian: np.ndarray, bias: np.ndarray | None = None
) -> tuple[list[QuantTensor], np.ndarray | None]:
    """Per-output-channel symmetric int8 weights of side-by-side ``blocks`` ([rows, cols_k]
    each, e.g. W and R of the stacked gates: ``z = W x + R h + b``), rounded together by
    :func:`compensated_rounding` on ``hessian`` = E[u u^T] of their joint input ``u``
    (``[x; h; 1]`` when ``bias`` is given: the bias, kept exact, absorbs the mean error).

    Each block keeps the scales per-channel nearest rounding gives it
    (:func:`~edgelstm.quant.tensor.quantize_symmetric` with ``axis=0``), so only codes change.
    Returns (one :class:`QuantTensor` per block, the adjusted bias or None).
    """
    nearest = [quantize_symmetric(b, "int8", axis=0) for b in blocks]
    grids = [
        np.broadcast_to(np.asarray(q.params.scales, np.float64)[:, None], b.shape)  # type: ignore[union-attr]
        for q, b in zip(nearest, blocks, strict=True)
    ]
    parts = [np.asarray(b, np.float64) for b in blocks]
    if bias is not None:
        parts.append(np.asarray(bias, np.float64)[:, None])
        grids.append(np.ones((len(bias), 1)))
    q = compensated_rounding(
        np.concatenate(parts, axis=1),
        np.concatenate(grids, axis=1),
        hessian,
        exact_columns=int(bias is not None),
    )
    out, start = [], 0
    for block, grid, near in zip(blocks, grids, nearest, strict=False):
        stop = start + block.shape[1]
        codes = np.clip(np.rint(q[:, start:stop] / grid), -127, 127).astype(np.int8)
        out.append(QuantTensor(codes, near.params))
        start = stop
    return out, (q[:, -1] if bias is not None else None)
