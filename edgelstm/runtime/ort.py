"""Run an emitted ONNX model with onnxruntime (CPU), following the contract of
:mod:`edgelstm.targets.onnx.names`: ``x`` first, then initial states and ``sequence_lens``
where the file has them (required inputs in new files, initializer-backed in older ones).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgelstm._io import read_bytes
from edgelstm.errors import InputDataError, ModelFileError
from edgelstm.targets.onnx import names

State = tuple[np.ndarray, np.ndarray]
INT32_MAX = 2**31 - 1


class OrtRunner:
    """An onnxruntime session with ``num_threads`` intra-op threads (1 by default).

    ``run`` returns every graph output in graph order (``y``, then final h/c per direction).
    ONNX models hold no state between calls: ``reset`` is a no-op, kept for symmetry with
    the LiteRT runner; feed the final states back as ``initial_states`` to stream.
    """

    def __init__(self, model: str | os.PathLike[str] | bytes, num_threads: int = 1) -> None:
        import onnxruntime as ort

        if hasattr(model, "SerializeToString"):  # an onnx.ModelProto
            data = model.SerializeToString()
        elif isinstance(model, bytes):
            data = model
        else:
            data = read_bytes(Path(model), "ONNX model")
        so = ort.SessionOptions()
        so.intra_op_num_threads = num_threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # older files' initializer-backed inputs make ORT warn
        try:
            self.session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise ModelFileError(f"onnxruntime cannot load the model: {exc}") from None
        # Inputs with an initializer default are listed as overridable initializers.
        self.input_names = [i.name for i in self.session.get_inputs()] + [
            i.name for i in self.session.get_overridable_initializers()
        ]
        self.output_names = [o.name for o in self.session.get_outputs()]
        x_dims = self.session.get_inputs()[0].shape
        self._batch_axis = x_dims.index("batch") if "batch" in x_dims else 0
        self._required = {i.name: i.shape for i in self.session.get_inputs()[1:]}

    def run(
        self,
        x: np.ndarray,
        initial_states: Sequence[Sequence[State | None]] | None = None,
        sequence_lens: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Run one batch; ``initial_states[layer][direction] = (h, c)`` (None: zeros)."""
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim != 3:
            raise InputDataError(
                f"input: expected a 3-D [B, T, I] (or [T, B, I]) array, found shape {arr.shape}"
            )
        feeds = {self.input_names[0]: arr}
        for k, layer in enumerate(initial_states or ()):
            for d, state in enumerate(layer):
                if state is None:
                    continue
                for which, value in zip("hc", state, strict=True):
                    name = names.initial_state(k, d, which)
                    if name not in self.input_names:
                        raise InputDataError(
                            f"the model has no initial-state input {name!r}: a stateless file; "
                            "compile with CompileOptions(onnx=OnnxOptions(state_inputs=True)) "
                            "for the streaming form that takes initial states"
                        )
                    feeds[name] = np.asarray(value, dtype=np.float32)
        if sequence_lens is not None:
            if names.SEQUENCE_LENS not in self.input_names:
                raise InputDataError(
                    "the model has no sequence_lens input: compile with "
                    "CompileOptions(onnx=OnnxOptions(sequence_lens=True)) (all-fused models)"
                )
            feeds[names.SEQUENCE_LENS] = np.asarray(sequence_lens, dtype=np.int32)
        self._feed_defaults(feeds, arr)
        try:
            return self.session.run(None, feeds)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise InputDataError(f"onnxruntime rejected the inputs: {exc}") from None

    def _feed_defaults(self, feeds: dict[str, np.ndarray], x: np.ndarray) -> None:
        """Zeros for required initial states, full length for ``sequence_lens``, when not
        given (the defaults older files held as initializers)."""
        batch = x.shape[self._batch_axis]
        for name, dims in self._required.items():
            if name in feeds:
                continue
            rows = dims[0] if dims and isinstance(dims[0], int) else batch
            if name == names.SEQUENCE_LENS:
                feeds[name] = np.full((rows,), INT32_MAX, np.int32)  # clamped to T in-graph
            elif len(dims) == 2 and isinstance(dims[1], int):
                feeds[name] = np.zeros((rows, dims[1]), np.float32)

    def reset(self) -> None:
        """No-op: an ONNX model keeps no state between runs."""
