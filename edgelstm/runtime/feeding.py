"""Feeding a runner: batch-major [N, T, I] sequences through a file of any batch size.

A compiled file has a fixed batch (or a dynamic one) and may be time-major; verify, the
framework comparison, the optimizer and the demo all want "these N sequences in, their
outputs out", batch-major. This is the one place that chunks, pads and transposes for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def run_model(runner: Any, x: np.ndarray) -> np.ndarray:
    """Run batch-major ``x`` [N, T, I] through ``runner`` in chunks of its batch size.

    Each chunk starts from zero state; a last partial chunk is zero-padded and trimmed.
    Returns the first output, batch-major.
    """
    time_major = runner.info.time_major
    b_axis = 1 if time_major else 0
    batch = runner.input_shape[b_axis]
    n = x.shape[0]
    chunk = batch if batch > 0 else n
    outs = []
    for start in range(0, n, chunk):
        part = x[start : start + chunk]
        if part.shape[0] < chunk:
            pad = np.zeros((chunk - part.shape[0], *part.shape[1:]), part.dtype)
            part = np.concatenate([part, pad])
        y = runner.run(part.transpose(1, 0, 2) if time_major else part)[0]
        if time_major and y.ndim == 3:
            y = y.transpose(1, 0, 2)
        outs.append(y[: min(chunk, n - start)])
    return np.concatenate(outs)
