"""Gate-order conversion between frameworks and the canonical per-gate roles: the one place.

Frameworks stack the four gates along one axis, each in its own order:
TF v1 ``LSTMCell`` i,j(=cell),f,o; Keras and PyTorch i,f,c,o; ONNX i,o,f,c (peepholes i,o,f).
Importers call :func:`unstack` and exporters :func:`stack`; nothing else knows gate orders.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgelstm.errors import WeightsError
from edgelstm.ir.roles import GATES, Kind, name_of

ORDERS: dict[str, tuple[str, ...]] = {
    "tf": ("input", "cell", "forget", "output"),
    "keras": ("input", "forget", "cell", "output"),
    "torch": ("input", "forget", "cell", "output"),
    "onnx": ("input", "output", "forget", "cell"),
    "tflite": GATES,
}
PEEPHOLE_ORDERS: dict[str, tuple[str, ...]] = {
    "onnx": ("input", "output", "forget"),
    "tflite": ("input", "forget", "output"),
}


def split(stacked: np.ndarray, order: tuple[str, ...], axis: int = 0) -> dict[str, np.ndarray]:
    """Split ``stacked`` into equal gate blocks along ``axis``, named by ``order``."""
    arr = np.asarray(stacked)
    if arr.shape[axis] % len(order):
        raise WeightsError(
            f"stacked gate tensor: axis {axis} of shape {list(arr.shape)} is not a multiple "
            f"of {len(order)} gates"
        )
    return dict(zip(order, np.split(arr, len(order), axis=axis), strict=True))


def join(parts: Mapping[str, np.ndarray], order: tuple[str, ...], axis: int = 0) -> np.ndarray:
    """Concatenate per-gate blocks in ``order`` (a missing gate is an error)."""
    return np.concatenate([parts[g] for g in order], axis=axis)


def unstack(
    order: str,
    kernel: np.ndarray,
    recurrent: np.ndarray,
    bias: np.ndarray | None,
    *,
    gate_axis: int = 0,
) -> dict[str, np.ndarray]:
    """Canonical role tensors from a framework's stacked gates.

    ``kernel`` is [4N, I] and ``recurrent`` [4N, P] when ``gate_axis`` is 0 (PyTorch, ONNX),
    or [I, 4N] / [P, 4N] when it is 1 (TF, Keras): both are returned as [N, I] / [N, P].
    ``bias`` is [4N] (already the sum of any two framework biases), None for zeros.
    """
    gates = ORDERS[order]
    kernel, recurrent = np.asarray(kernel), np.asarray(recurrent)
    if gate_axis == 1:
        kernel, recurrent = kernel.T, recurrent.T
    n4 = kernel.shape[0]
    if bias is None:
        bias = np.zeros(n4, dtype=np.float32)
    if recurrent.shape[0] != n4 or np.shape(bias) != (n4,):
        raise WeightsError(
            f"stacked gates: kernel has {n4} gate rows but recurrent kernel has "
            f"{recurrent.shape[0]} and bias shape is {list(np.shape(bias))}"
        )
    out: dict[str, np.ndarray] = {}
    for kind, parts in (
        ("weight", split(kernel, gates)),
        ("recurrent", split(recurrent, gates)),
        ("bias", split(bias, gates)),
    ):
        out.update({name_of(kind, g): v for g, v in parts.items()})
    return out


def stack(
    order: str, tensors: Mapping[str, np.ndarray], *, gate_axis: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`unstack`: (kernel, recurrent, bias) stacked in ``order``.

    For CIFG (no input-gate tensors) the input gate is filled with zeros, which is what a
    framework's ``input_forget``/coupled mode ignores.
    """
    gates = ORDERS[order]
    ref = tensors[name_of("weight", "forget")]
    rec = tensors[name_of("recurrent", "forget")]

    def get(kind: Kind, like: np.ndarray) -> dict[str, np.ndarray]:
        names = {g: name_of(kind, g) for g in GATES}
        return {g: tensors[n] if n in tensors else np.zeros_like(like) for g, n in names.items()}

    kernel = join(get("weight", ref), gates)
    recurrent = join(get("recurrent", rec), gates)
    bias = join(get("bias", ref[:, 0]), gates)
    if gate_axis == 1:
        kernel, recurrent = kernel.T, recurrent.T
    return kernel, recurrent, bias


def unstack_peephole(order: str, stacked: np.ndarray) -> dict[str, np.ndarray]:
    """Canonical ``cell_to_*_weights`` from a framework's stacked peepholes (ONNX P)."""
    parts = split(stacked, PEEPHOLE_ORDERS[order])
    return {name_of("peephole", g): v for g, v in parts.items()}


def stack_peephole(order: str, tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Stacked peepholes in ``order``; the input peephole is zero under CIFG."""
    ref = tensors[name_of("peephole", "forget")]
    parts = {
        g: tensors.get(name_of("peephole", g), np.zeros_like(ref))
        for g in PEEPHOLE_ORDERS["tflite"]
    }
    return join(parts, PEEPHOLE_ORDERS[order])
