"""The TensorFlow side of the anchor benchmarks, used by bench_anchors.py.

The same Keras LSTM weights converted the ways a user could convert them today: the legacy
tf-keras converter (fused op: float / hybrid / int8) and Keras 3's converter (WHILE graph:
float / dynamic range). TensorFlow runs in a subprocess per stage because
``TF_USE_LEGACY_KERAS`` decides at import time which Keras ``tf.keras`` is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MODES = ("float", "dynamic", "int8")


def convert(model: Any, out: Path, jobs: dict[str, str]) -> dict[str, dict[str, str]]:
    """Convert a Keras ``model`` once per ``{key: mode}``; write ``out/key.tflite``.

    int8 calibrates on ``out/calibration.npy`` ([N, T, I]). A converter failure is a skip.
    """
    import numpy as np
    import tensorflow as tf

    built, skipped = {}, {}
    for key, mode in jobs.items():
        try:
            conv = tf.lite.TFLiteConverter.from_keras_model(model)
            if mode != "float":
                conv.optimizations = [tf.lite.Optimize.DEFAULT]
            if mode == "int8":
                cal = np.load(out / "calibration.npy")
                conv.representative_dataset = lambda c=cal: ([c[k : k + 1]] for k in range(len(c)))
                conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            (out / f"{key}.tflite").write_bytes(conv.convert())
            built[key] = f"{key}.tflite"
        except Exception as exc:  # noqa: BLE001 - report any converter failure as a skip
            skipped[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return {"built": built, "skipped": skipped}


def legacy_model(units: int, shape: tuple[int, int, int], seed: int, out: Path) -> Any:
    """The tf-keras LSTM whose weights are the benchmark's weights of record.

    Saves them as ``out/keras_weights.npz`` for the Keras 3 stage.
    """
    import numpy as np
    import tf_keras as K

    batch, steps, features = shape
    K.utils.set_random_seed(seed)
    inp = K.Input((steps, features), batch_size=batch)
    model = K.Model(inp, K.layers.LSTM(units, return_sequences=True)(inp))
    kernel, recurrent, bias = model.layers[1].get_weights()
    np.savez(out / "keras_weights.npz", kernel=kernel, recurrent_kernel=recurrent, bias=bias)
    return model


def keras3_stage(units: int, shape: tuple[int, int, int], out: Path) -> dict[str, dict[str, str]]:
    """The same weights in a Keras 3 LSTM, converted by the (non-fusing) Keras 3 path."""
    import keras
    import numpy as np

    batch, steps, features = shape
    w = np.load(out / "keras_weights.npz")
    inp = keras.Input((steps, features), batch_size=batch)
    layer = keras.layers.LSTM(units, return_sequences=True)
    model = keras.Model(inp, layer(inp))
    layer.set_weights([w["kernel"], w["recurrent_kernel"], w["bias"]])
    return convert(model, out, {"keras3_float": "float", "keras3_dynamic": "dynamic"})


def run_stage(script: str, name: str, out: Path, args: list[str], timeout: int) -> dict:
    """Run ``script --stage name`` in a subprocess (legacy Keras for "legacy").

    The stage writes ``out/stage_<name>.json``; a failed stage becomes one skip entry.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_USE_LEGACY_KERAS", None)
    if name == "legacy":
        env["TF_USE_LEGACY_KERAS"] = "1"
    cmd = [sys.executable, script, "--stage", name, "--out", str(out), *args]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    result = out / f"stage_{name}.json"
    if proc.returncode != 0 or not result.is_file():
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
        return {"built": {}, "skipped": {f"stage {name}": f"failed: {tail}"}}
    return json.loads(result.read_text())
