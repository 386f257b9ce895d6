"""Helpers shared by the ONNX emitter tests (not a test module)."""

from __future__ import annotations

import numpy as np
import onnx

from edgelstm.ir.options import CompileOptions
from edgelstm.runtime.ort import OrtRunner
from edgelstm.targets.onnx import to_onnx

TOL = 1e-5


def op_types(proto: onnx.ModelProto) -> list[str]:
    """Op types of the main graph (subgraph bodies excluded)."""
    return [n.op_type for n in proto.graph.node]


def emit_checked(model, options: CompileOptions | None = None, **kwargs) -> onnx.ModelProto:
    """to_onnx + the full ONNX checker (every emitted model is checked)."""
    proto = to_onnx(model, options, **kwargs)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def run(proto: onnx.ModelProto, x, initial_states=None, sequence_lens=None) -> list[np.ndarray]:
    return OrtRunner(proto.SerializeToString()).run(x, initial_states, sequence_lens)


def max_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def assert_matches(outputs: list[np.ndarray], ref, model, tol: float = TOL) -> float:
    """Compare y and every final (h, c) with reference_model's; returns the max error."""
    errs = [max_err(outputs[0], ref.output)]
    k = 1
    for layer_states in ref.states:
        for h, c in layer_states:
            errs += [max_err(outputs[k], h), max_err(outputs[k + 1], c)]
            k += 2
    assert k == len(outputs)
    err = max(errs)
    assert err <= tol, f"{model.describe()}: max error {err:.3g} > {tol}"
    return err
