"""``verify FILE --explain``: read a full-int8 .tflite's LSTM plans back and explain them.

The quantization the kernel runs is in the file (codes, scales, zero points of every op
tensor), so the plan is rebuilt from it — no calibration data needed — and replayed by
:func:`edgelstm.measure.explain.explain_model` against the float64 reference of the source
model (found as ``verify`` finds it: ``--against`` or the file's provenance).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm._io import read_bytes
from edgelstm.errors import UnsupportedError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.roles import (
    CELL_STATE_INDEX,
    INPUT_INDEX,
    INTERMEDIATES,
    OUTPUT_STATE_INDEX,
    present_weight_roles,
)
from edgelstm.ir.weights import LSTMWeights
from edgelstm.measure.explain import ExplainReport, explain_model
from edgelstm.quant.model_plan import ModelPlan
from edgelstm.quant.pad import pad_for_int8
from edgelstm.quant.plan import Int8Plan
from edgelstm.quant.qparams import QuantParams
from edgelstm.quant.tensor import QuantTensor
from edgelstm.targets.tflite.reader import _Graph  # the checked flatbuffer walk
from edgelstm.targets.tflite.schema import NUMPY_OF_TYPE, BuiltinOperator, decode_model

WHAT = "--explain"


def _params(g: _Graph, t: int, what: str) -> QuantParams | None:
    tensor = g.tensor(t, what)
    dtype = NUMPY_OF_TYPE[int(tensor.type)].name
    q = tensor.quantization
    if dtype == "float32" or q is None or q.scale is None or not len(q.scale):
        return None
    zp = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
    return QuantParams(float(q.scale[0]), zp, dtype)  # type: ignore[arg-type]


def _codes(g: _Graph, t: int, what: str) -> np.ndarray:
    tensor = g.tensor(t, what)
    raw = g.raw(t, what) or b""
    dtype = NUMPY_OF_TYPE[int(tensor.type)]
    return np.frombuffer(raw, dtype=dtype).reshape([int(d) for d in tensor.shape]).copy()


def plan_from_tflite(data: bytes, model: LSTMModel, where: str = "model") -> ModelPlan:
    """The :class:`ModelPlan` a full-int8 file runs, for ``model``'s structure (the source
    model, padded as int8 pads it)."""
    g = _Graph(decode_model(data), data, where)
    ops = g.ops_of(BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM)
    visits = list(model.walk())
    if not ops:
        raise UnsupportedError(
            WHAT,
            f"{where} has no fused LSTM op (an unfused or all-integer lowering): --explain "
            "replays the fused int8 kernel only; 'edgelstm verify' measures this file's error",
        )
    if len(ops) != len(visits):
        raise UnsupportedError(
            WHAT, f"{where} has {len(ops)} LSTM op(s), the source {len(visits)} direction(s)"
        )
    plans: dict[tuple[int, int], Int8Plan] = {}
    for op, v in zip(ops, visits, strict=True):
        inputs = g.lstm_inputs(op)
        spec = v.weights.spec
        params = {
            i: _params(g, inputs[i], "LSTM tensor")
            for i in (INPUT_INDEX, OUTPUT_STATE_INDEX, CELL_STATE_INDEX)
        }
        if any(p is None for p in params.values()) or params[INPUT_INDEX].dtype != "int8":
            raise UnsupportedError(
                WHAT, f"{where} is not a full-int8 file (compile --quantize int8 to explain it)"
            )
        tensors = {}
        for role in present_weight_roles(spec):
            t = inputs[role.index]
            p = _params(g, t, role.name)
            if p is None:
                raise UnsupportedError(WHAT, f"{where}: {role.name} is not quantized")
            tensors[role.name] = QuantTensor(_codes(g, t, role.name), p)
            if tensors[role.name].data.shape != tuple(v.weights.tensors[role.name].shape):
                raise UnsupportedError(
                    WHAT, f"{where}: {role.name} has another shape than the source's"
                )
        raw_inter = g.ops[op].intermediates
        inter = [] if raw_inter is None else [int(t) for t in raw_inter]
        intermediates = tuple(
            _params(g, inter[i.index], i.name) if i.index < len(inter) else None
            for i in INTERMEDIATES
        )
        plans[(v.k, v.d)] = Int8Plan(
            spec=spec,
            tensors=tensors,
            input=params[INPUT_INDEX],  # type: ignore[arg-type]
            output=params[OUTPUT_STATE_INDEX],  # type: ignore[arg-type]
            cell_state=params[CELL_STATE_INDEX],  # type: ignore[arg-type]
            intermediates=intermediates,
            estimator="file",
        )
    layers = tuple(
        tuple(plans[(visit.k, d.d)] for d in visit.directions) for visit in model.walk_layers()
    )
    return ModelPlan(model, layers, None, "file", None, tuple(ls[0].output for ls in layers))


def explain_file(
    model_path: str | os.PathLike[str],
    source: Any = None,
    data: Any = None,
    *,
    time_major: bool = False,
    seed: int = 0,
    sequences: int | None = None,
    seq_len: int | None = None,
) -> ExplainReport:
    """Explain the full-int8 .tflite ``model_path`` on ``data`` (as ``verify`` reads it)."""
    from edgelstm.measure.verify import random_inputs, read_data, resolve_source
    from edgelstm.runtime.select import open_runner

    path = Path(model_path)
    if path.suffix.lower() != ".tflite":
        raise UnsupportedError(WHAT, f"{path.name}: --explain reads full-int8 .tflite files")
    with open_runner(path, "litert", 1, probe=False) as runner:
        src, _, _, _ = resolve_source(path, runner.info, source)
        if data is None:
            x = random_inputs(runner, sequences, seq_len, seed)
        else:
            x, _ = read_data(data, runner, src.n_input, time_major)
    model = pad_for_int8(src).model
    raw = read_bytes(path)
    plan = plan_from_tflite(raw, model, path.name)
    xm = np.asarray(x, np.float64)
    if model.time_major:
        xm = xm.transpose(1, 0, 2)
    return explain_model(model, xm, plan=plan, data=raw)


def explain_int8(
    model: LSTMModel | LSTMWeights | str | os.PathLike[str],
    x: np.ndarray,
    *,
    source: object = None,
    **options: Any,
) -> ExplainReport:
    """Diagnose a full-int8 model on inputs ``x``: the public entry (``verify --explain``).

    ``model``: a full-int8 .tflite path (``x`` then [N, T, I], as ``verify --data``; its plan
    is read from the file and ``source`` — a source file or model, default the file's
    provenance as ``verify`` finds it — gives the float weights), or an LSTM model / weights
    (``x`` in the model's layout; ``options`` as :func:`edgelstm.measure.explain.explain_model`:
    ``calibration``, ``plan``, ``data``, ``check_runtime``, ``ablate``).
    """
    if isinstance(model, str | os.PathLike):
        return explain_file(model, source, np.asarray(x, np.float32))
    return explain_model(model, x, **options)
