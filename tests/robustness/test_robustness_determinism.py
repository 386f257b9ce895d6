"""Same input and options, same bytes: .tflite and .onnx, float and dynamic, in one process
and across processes with different PYTHONHASHSEED (dict/set order must not leak into files)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from edgelstm.cli.main import main

DIGESTS = r"""
import hashlib, json, sys
import numpy as np
from edgelstm import DenseHead, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights
from edgelstm.targets.onnx import to_onnx
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.tflite import to_tflite

w = LSTMWeights.random
a = LSTMSpec(3, 5, 2, peephole=True, projection=True, cell_clip=3.0, proj_clip=0.75)
b = LSTMSpec(3, 4, cifg=True, layer_norm=True, activation="relu")
models = {
    "single": LSTMModel.of(w(a, 1), provenance={"z": 1, "a": [1, 2], "m": {"y": 1, "b": 2}}),
    "stack": LSTMModel(
        (LSTMLayer(w(a, 2), w(b, 3)), LSTMLayer(w(LSTMSpec(6, 3), 4), go_backwards=True)),
        head=DenseHead(np.ones((2, 3)), np.zeros(2), "softmax"),
        return_sequences=False,
        return_state=True,
        provenance={"source": "x", "forget_bias": 1.0},
    ),
}
out = {}
for name, model in models.items():
    for q in ("none", "dynamic"):
        for batch in (1, None):
            opts = CompileOptions(batch=batch, quantize=q, source="det")
            out[f"{name}-{q}-{batch}.tflite"] = hashlib.sha256(to_tflite(model, opts)).hexdigest()
            data = to_onnx(model, opts).SerializeToString()
            out[f"{name}-{q}-{batch}.onnx"] = hashlib.sha256(data).hexdigest()
print(json.dumps(out, sort_keys=True))
"""


def _digests(hash_seed: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(
        [sys.executable, "-c", DIGESTS], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_byte_identical_across_processes_and_hash_seeds() -> None:
    first, second = _digests("1"), _digests("4242")
    assert len(first) == 16
    assert first == second, sorted(k for k in first if first[k] != second[k])
    namespace: dict = {}
    out_lines: list[str] = []
    namespace["print"] = out_lines.append
    exec(compile(DIGESTS, "<digests>", "exec"), namespace)  # and in this process, too
    assert json.loads(out_lines[-1]) == first


def test_cli_compile_twice_same_bytes(tmp_path) -> None:
    from edgelstm import LSTMSpec, LSTMWeights, save_npz

    src = tmp_path / "w.npz"
    save_npz(LSTMWeights.random(LSTMSpec(4, 6, peephole=True), seed=9), src)
    for suffix in (".tflite", ".onnx"):
        for quantize in ("none", "dynamic"):
            blobs = []
            for k in range(2):
                out = tmp_path / f"{k}{suffix}"
                assert main(["compile", str(src), "-o", str(out), "--quantize", quantize]) == 0
                blobs.append(Path(out).read_bytes())
            assert blobs[0] == blobs[1], (suffix, quantize)
            assert hashlib.sha256(blobs[0]).hexdigest()
