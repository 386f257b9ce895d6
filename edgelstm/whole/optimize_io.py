"""The files of the whole-model latency search: linking, verifying, timing, the record.

:func:`link_parts` joins converted parts in series (an unfused LSTM's extra final-state
outputs dropped, its stale state metadata removed); :func:`run_file` and
:func:`time_interleaved` run linked files on LiteRT's Interpreter as a deployed app would;
:func:`read_choice` reads the ``edgelstm.optimize`` record back from a file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgelstm.errors import InputDataError
from edgelstm.whole.segments import WholeModel

OPTIMIZE_NAME = "edgelstm.optimize"
DEFAULT_SEQUENCES = 8


def link_parts(parts: Sequence[bytes], metadata: dict[str, bytes] | None = None) -> bytes:
    """Parts in series, each part's first output feeding the next (an unfused LSTM's final
    states are further outputs nobody reads: computed and dropped)."""
    from edgelstm.targets.tflite.link import link_graph

    n = len(parts)
    metadata = {**_stale_state_entry(parts), **(metadata or {})}
    return link_graph(
        list(parts),
        inputs=[(0, 0)],
        edges={(k, 0): (k - 1, 0) for k in range(1, n)},
        outputs=[(n - 1, 0)],
        input_names=["input"],
        output_names=["output"],
        metadata=metadata,
    )


def _stale_state_entry(parts: Sequence[bytes]) -> dict[str, bytes]:
    """The one LSTM part's ``edgelstm`` entry without ``state_io`` / ``final_states``: an
    unfused part's final-state outputs are not outputs of the linked file, and a runner
    that read them would look for tensors the file does not expose."""
    from edgelstm.targets.tflite.link_merge import text
    from edgelstm.targets.tflite.metadata import METADATA_NAME
    from edgelstm.targets.tflite.schema import decode_model

    found = []
    for data in parts:
        model = decode_model(bytes(data))
        for m in model.metadata or []:
            if text(m.name) == METADATA_NAME:
                raw = bytes(memoryview(model.buffers[int(m.buffer)].data).cast("B"))
                found.append(json.loads(raw.decode()))
    if len(found) != 1 or not {"state_io", "final_states"} & set(found[0]):
        return {}
    meta = {k: v for k, v in found[0].items() if k not in ("state_io", "final_states")}
    return {METADATA_NAME: json.dumps(meta, sort_keys=True).encode()}


def verification_inputs(whole: WholeModel, data: Any, n: int = DEFAULT_SEQUENCES) -> np.ndarray:
    """``data`` (the model's inputs) or seeded ones: N(0, 1), or token ids below the
    Embedding's vocabulary size for an integer input."""
    shape = [d if d is not None else 50 for d in whole.input_shape]
    if data is not None:
        x = np.asarray(data)
        if x.ndim != len(shape) + 1 or list(x.shape[1:]) != list(shape):
            raise InputDataError(
                f"data: expected [N, {', '.join(map(str, shape))}] (the model's input), "
                f"found {list(x.shape)}"
            )
        return x.astype(whole.input_dtype)
    rng = np.random.default_rng(0)
    if np.issubdtype(np.dtype(whole.input_dtype), np.integer):
        vocab = min(
            (
                int(layer.input_dim)
                for seg in whole.segments
                for layer in seg.layers
                if hasattr(layer, "input_dim")
            ),
            default=2,
        )
        return rng.integers(0, vocab, (n, *shape)).astype(whole.input_dtype)
    return rng.standard_normal((n, *shape)).astype(np.float32)


def run_file(data: bytes, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """One sequence per invoke on LiteRT's Interpreter (as the whole-model tests run it)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=threads)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    n = _fixed_batch(inp, x)
    if list(inp["shape"]) != [n, *x.shape[1:]]:
        it.resize_tensor_input(inp["index"], [n, *x.shape[1:]])
        it.allocate_tensors()
    ys = []
    for start in range(0, len(x), n):
        it.set_tensor(inp["index"], x[start : start + n].astype(inp["dtype"]))
        it.invoke()
        ys.append(it.get_tensor(out["index"]).astype(np.float64))
    return np.concatenate(ys)


def _fixed_batch(inp: dict[str, Any], x: np.ndarray) -> int:
    """Rows per invoke: 1, or the file's fixed batch when ``x`` is exactly that batch (a
    PyTorch file is fixed to its example input)."""
    sig = inp.get("shape_signature", inp["shape"])
    fixed = int(inp["shape"][0])
    return fixed if sig[0] > 0 and fixed > 1 and len(x) % fixed == 0 else 1


def time_interleaved(
    files: Sequence[bytes], x: np.ndarray, runs: int = 100, warmup: int = 10, threads: int = 1
) -> list[float]:
    """p50 ms of one invoke of each file on input ``x[0:1]``, timed round-robin in blocks of
    10 with the order rotated each round (background load hits every file alike)."""
    from ai_edge_litert.interpreter import Interpreter

    its = []
    for data in files:
        it = Interpreter(model_content=data, num_threads=threads)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        n = _fixed_batch(inp, x)
        if list(inp["shape"]) != [n, *x.shape[1:]]:
            it.resize_tensor_input(inp["index"], [n, *x.shape[1:]])
            it.allocate_tensors()
        it.set_tensor(inp["index"], x[:n].astype(inp["dtype"]))
        its.append(it)
    for _ in range(warmup):
        for it in its:
            it.invoke()
    times: list[list[float]] = [[] for _ in its]
    block, clock = 10, time.perf_counter_ns
    for k in range(-(-runs // block)):
        for j in range(len(its)):
            i = (j + k) % len(its)
            for _ in range(min(block, runs - k * block)):
                t0 = clock()
                its[i].invoke()
                times[i].append((clock() - t0) / 1e6)
    return [float(np.median(t)) for t in times]


def read_choice(data: bytes) -> dict[str, Any] | None:
    """The ``edgelstm.optimize`` entry of a file (None when it was not optimized)."""
    from edgelstm.targets.tflite.link_merge import text
    from edgelstm.targets.tflite.schema import decode_model

    model = decode_model(bytes(data))
    for m in model.metadata or []:
        if text(m.name) == OPTIMIZE_NAME and 0 <= int(m.buffer) < len(model.buffers):
            raw = bytes(memoryview(model.buffers[int(m.buffer)].data).cast("B"))
            return json.loads(raw.decode())
    return None


__all__ = [
    "OPTIMIZE_NAME",
    "link_parts",
    "read_choice",
    "run_file",
    "time_interleaved",
    "verification_inputs",
]
