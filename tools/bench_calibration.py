"""Benchmark int8 calibration against the float32 GEMM the same gate math needs (issue 17.5).

The case: an LSTM 128 -> 1024 units, 256 calibration sequences of length 100, full int8 of
the fused TFLite op, the model and data read from .npz. Every measurement runs in a fresh
process (peak RSS is per process); each is repeated and the medians are printed:

* ``gemm``    — the float32 baseline: x W^T for all steps, then h R^T per step (batches of 64,
  the calibrator's batching), with a tanh so h is a real state, in numpy float32;
* ``calib``   — :func:`edgelstm.quant.calibrate` alone, in-process (data loaded from .npz);
* ``compile`` — ``edgelstm compile m.npz -o m.tflite --quantize int8 --calibration data.npz
  --seq-len 100`` as a subprocess (wall time, peak RSS of that child).

With ``--keras`` (needs TensorFlow/Keras 3) the same model is also saved as ``m.keras`` and:

* ``compile.keras`` — the same compile from ``m.keras``;
* ``load.npz`` / ``load.keras`` — a process that only imports the model (``from_npz`` /
  ``from_keras``): their difference is what TensorFlow's own import costs, the most
  ``compile.keras`` may add over ``compile`` (issue 17.5).

Usage: ``python tools/bench_calibration.py [--repeat 3] [--units 1024] [--workdir DIR]
[--keras]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_INPUT, SEQUENCES, STEPS, BATCH = 128, 256, 100, 64


def _peak_mb_self() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(workdir: Path, units: int) -> tuple[Path, Path]:
    """Random 128 -> ``units`` model (scaled so gates are not all saturated) and its data."""
    from edgelstm import LSTMSpec, LSTMWeights
    from edgelstm.importers.npz import save_npz

    spec = LSTMSpec(n_input=N_INPUT, n_cell=units)
    weights = LSTMWeights.random(spec, seed=0, scale=1.5 / np.sqrt(units))
    model_path, data_path = workdir / "m.npz", workdir / "data.npz"
    save_npz(weights, model_path)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((SEQUENCES, STEPS, N_INPUT)).astype(np.float32)
    np.savez(data_path, calibration=x)
    return model_path, data_path


def child_gemm(model_path: Path, data_path: Path) -> dict[str, float]:
    """The float32 gate math of the whole calibration set: the baseline."""
    from edgelstm.importers.npz import from_npz
    from edgelstm.ir.roles import name_of

    w = from_npz(model_path).layers[0].forward.tensors
    order = ("input", "forget", "cell", "output")
    wx = np.concatenate([w[name_of("weight", g)] for g in order]).astype(np.float32).T.copy()
    wr = np.concatenate([w[name_of("recurrent", g)] for g in order]).astype(np.float32).T.copy()
    x = np.load(data_path)["calibration"]
    units = wr.shape[0]
    start = time.perf_counter()
    for b in range(0, x.shape[0], BATCH):
        xs = x[b : b + BATCH]
        xw = (xs.reshape(-1, N_INPUT) @ wx).reshape(xs.shape[0], STEPS, -1)
        h = np.zeros((xs.shape[0], units), np.float32)
        for t in range(STEPS):
            z = xw[:, t] + h @ wr
            h = np.tanh(z[:, :units])
    return {"seconds": time.perf_counter() - start, "peak_mb": _peak_mb_self()}


def child_load(model_path: Path, data_path: Path) -> dict[str, float]:
    """Import the model only (the baseline each compile's peak is compared with)."""
    if model_path.suffix == ".keras":
        from edgelstm.importers.keras import from_keras

        from_keras(str(model_path))
    else:
        from edgelstm.importers.npz import from_npz

        from_npz(model_path)
    return {"seconds": 0.0, "peak_mb": _peak_mb_self()}


def child_save_keras(model_path: Path, data_path: Path) -> dict[str, float]:
    """Write ``m.keras`` next to the model (in a child: a parent holding TensorFlow would
    inflate every later child's peak RSS, which starts from the forked parent's)."""
    save_keras(model_path.parent, model_path)
    return {"seconds": 0.0, "peak_mb": _peak_mb_self()}


def save_keras(workdir: Path, model_path: Path) -> Path:
    """The .npz model as a Keras 3 LSTM file (kernel columns in Keras' i, f, c, o order)."""
    import keras

    from edgelstm.importers.npz import from_npz
    from edgelstm.ir.roles import name_of

    w = from_npz(model_path).layers[0].forward.tensors
    order = ("input", "forget", "cell", "output")
    units = w[name_of("recurrent", "input")].shape[0]
    model = keras.Sequential([keras.Input((STEPS, N_INPUT)), keras.layers.LSTM(units)])
    layer = model.layers[0]
    layer.set_weights(
        [
            np.concatenate([w[name_of("weight", g)] for g in order]).T,
            np.concatenate([w[name_of("recurrent", g)] for g in order]).T,
            np.concatenate([w[name_of("bias", g)] for g in order]),
        ]
    )
    path = workdir / "m.keras"
    model.save(path)
    return path


def child_calib(model_path: Path, data_path: Path) -> dict[str, float]:
    """:func:`calibrate` alone, as the compiler calls it."""
    from edgelstm.importers.npz import from_npz
    from edgelstm.measure.data import load_calibration
    from edgelstm.quant.calibrate import calibrate

    model = from_npz(model_path)
    data = load_calibration(str(data_path))
    start = time.perf_counter()
    calibrate(model, data, progress=False)
    return {"seconds": time.perf_counter() - start, "peak_mb": _peak_mb_self()}


def run_child(kind: str, model_path: Path, data_path: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", kind, str(model_path), str(data_path)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_compile(model_path: Path, data_path: Path, out: Path) -> dict[str, float]:
    """The CLI compile as a subprocess: wall time and that child's own peak RSS (wait4)."""
    cmd = [sys.executable, "-m", "edgelstm", "compile", str(model_path), "-o", str(out)]
    cmd += ["--quantize", "int8", "--calibration", str(data_path), "--seq-len", str(STEPS)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"compile failed ({proc.returncode}): {err.strip()}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--units", type=int, default=1024)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keras", action="store_true", help="also compile from .keras (needs TF)")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "MODEL", "DATA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, model_path, data_path = args.child
        fn = {
            "gemm": child_gemm,
            "calib": child_calib,
            "load": child_load,
            "save_keras": child_save_keras,
        }[kind]
        print(json.dumps(fn(Path(model_path), Path(data_path))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model_path, data_path = build(workdir, args.units)
        keras_path = None
        if args.keras:
            run_child("save_keras", model_path, data_path)
            keras_path = workdir / "m.keras"
        runs: dict[str, list[dict[str, float]]] = {"gemm": [], "calib": [], "compile": []}
        for _ in range(args.repeat):
            runs["gemm"].append(run_child("gemm", model_path, data_path))
            runs["calib"].append(run_child("calib", model_path, data_path))
            runs["compile"].append(run_compile(model_path, data_path, workdir / "m.tflite"))
            if keras_path is not None:
                out = workdir / "mk.tflite"
                runs.setdefault("compile.keras", []).append(run_compile(keras_path, data_path, out))
                runs.setdefault("load.npz", []).append(run_child("load", model_path, data_path))
                runs.setdefault("load.keras", []).append(run_child("load", keras_path, data_path))
        med = {
            k: {m: statistics.median(r[m] for r in v) for m in ("seconds", "peak_mb")}
            for k, v in runs.items()
        }
        gemm = med["gemm"]["seconds"]
        print(
            f"LSTM {N_INPUT}->{args.units}, {SEQUENCES}x{STEPS} calibration, "
            f"medians of {args.repeat} fresh processes"
        )
        print(f"{'measurement':<14} {'seconds':>8} {'x GEMM':>7} {'peak MB':>8}")
        for k, v in med.items():
            ratio = v["seconds"] / gemm
            print(f"{k:<14} {v['seconds']:>8.2f} {ratio:>7.2f} {v['peak_mb']:>8.0f}")
        if keras_path is not None:
            added = med["compile.keras"]["peak_mb"] - med["compile"]["peak_mb"]
            tf_cost = med["load.keras"]["peak_mb"] - med["load.npz"]["peak_mb"]
            print(f".keras adds {added:.0f} MB over .npz; TensorFlow's import: {tf_cost:.0f} MB")


if __name__ == "__main__":
    main()
