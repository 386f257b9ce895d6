"""Full-integer accuracy: edgelstm's int8 files vs the legacy TF converter's, and ablations.

Sections (``--sections``, default all but ``estimators``):

* ``legacy`` — a tf-keras LSTM trained briefly on the Japanese Vowels data (models/
  japanese_vowels.npz), converted by the legacy converter (TF_USE_LEGACY_KERAS=1,
  ``TFLiteConverter.from_keras_model``, ``representative_dataset`` = the train split,
  ``TFLITE_BUILTINS_INT8``) and by edgelstm (``from_keras`` + ``quantize="int8"``, same
  calibration data). Both run on LiteRT over the test split; error vs the float64 reference.
* ``projection`` — a projection LSTM with zero-point-0 hidden (ours) vs the same plan with
  the converter's asymmetric hidden (the kernel saturates it), on a symmetric-hidden and an
  asymmetric-hidden (positive cell) model.
* ``features`` — every supported feature combination: max abs / RMSE / output LSB.
* ``estimators`` — range estimators (input × state) on Gaussian, Student-t(3) and Japanese
  Vowels inputs: the measurement behind ``DEFAULT_ESTIMATORS`` (~90 s).

    .venv/bin/python tools/bench_int8_vs_legacy.py [--sections legacy,projection] [--units 64]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgelstm import LSTMSpec, LSTMWeights, reference_model  # noqa: E402
from edgelstm.measure.int8_error import (  # noqa: E402
    ErrorStats,
    compile_int8,
    error_stats,
    evaluate_int8,
    run_tflite,
)
from edgelstm.quant import calibrate, plan_model  # noqa: E402

DATA = ROOT / "models" / "japanese_vowels.npz"


def _vowels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.load(DATA)
    return d["x_train"].astype(np.float32), d["x_test"].astype(np.float32), d["y_train"]


def _row(name: str, stats: ErrorStats, extra: str = "") -> str:
    return (
        f"  {name:<44} max {stats.max_abs:8.4f}  rmse {stats.rmse:8.5f}  "
        f"({stats.rmse_lsb:5.2f} LSB of {stats.lsb:.5f}) {extra}"
    )


# -- legacy converter ----------------------------------------------------------------------------


def _keras_lstm(units: int, epochs: int, seed: int):
    """A tf-keras LSTM(return_sequences=True) with weights trained on Japanese Vowels."""
    import tensorflow as tf
    import tf_keras

    xtr, _, ytr = _vowels()
    steps, feats = xtr.shape[1:]
    tf.random.set_seed(seed)
    clf = tf_keras.Sequential(
        [
            tf_keras.layers.Input((steps, feats)),
            tf_keras.layers.LSTM(units),
            tf_keras.layers.Dense(9, activation="softmax"),
        ]
    )
    clf.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = clf.fit(xtr, ytr, epochs=epochs, batch_size=32, verbose=0)
    seq = tf_keras.Sequential(
        [
            tf_keras.layers.Input((steps, feats), batch_size=1),
            tf_keras.layers.LSTM(units, return_sequences=True),
        ]
    )
    seq.layers[0].set_weights(clf.layers[0].get_weights())
    return seq, float(hist.history["accuracy"][-1])


def _legacy_int8(keras_model, calibration: np.ndarray) -> bytes:
    import tensorflow as tf

    def representative():
        for i in range(len(calibration)):
            yield [calibration[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return conv.convert()


def _run_per_sequence(data: bytes, x: np.ndarray) -> np.ndarray:
    """Run a batch-1 file sequence by sequence, zeroing its state variables in between."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    ys = []
    for seq in x:
        it.reset_all_variables()
        it.set_tensor(inp["index"], seq[None].astype(np.float32))
        it.invoke()
        ys.append(it.get_tensor(out["index"])[0].astype(np.float64))
    return np.stack(ys)


def section_legacy(units_list: list[int], epochs: int) -> None:
    from edgelstm import from_keras
    from edgelstm.ir.options import CompileOptions
    from edgelstm.targets.tflite import to_tflite

    xtr, xte, _ = _vowels()
    print("\n== legacy tf-keras converter vs edgelstm, full int8, Japanese Vowels ==")
    print(f"   calibration: train split {xtr.shape}; held out: test split {xte.shape}")
    for units in units_list:
        t0 = time.perf_counter()
        keras_model, acc = _keras_lstm(units, epochs, seed=units)
        model = from_keras(keras_model)
        ref = reference_model(model, xte).output
        legacy = _legacy_int8(keras_model, xtr)
        ours, plan = compile_int8(model, xtr)
        float_file = to_tflite(model, CompileOptions(batch=None))
        lsb = plan.output.scale
        s_legacy = error_stats(_run_per_sequence(legacy, xte), ref, lsb)
        s_ours = error_stats(run_tflite(ours, xte), ref, lsb)
        s_float = error_stats(run_tflite(float_file, xte), ref, lsb)
        print(f" LSTM {units} units (train acc {acc:.2f} after {epochs} epochs):")
        print(_row("float32 (edgelstm)", s_float, f"{len(float_file):>9,} B"))
        print(_row("int8 legacy converter", s_legacy, f"{len(legacy):>9,} B"))
        print(_row("int8 edgelstm", s_ours, f"{len(ours):>9,} B"))
        verdict = "OK" if s_ours.rmse <= s_legacy.rmse else "WORSE"
        print(
            f"  -> edgelstm RMSE / legacy RMSE = {s_ours.rmse / s_legacy.rmse:.2f} ({verdict}); "
            f"{time.perf_counter() - t0:.0f} s"
        )


# -- projection hidden zero point ----------------------------------------------------------------


def _projection_model(cell_bias: float) -> LSTMWeights:
    spec = LSTMSpec(12, 64, 32, projection=True, projection_bias=True)
    scale = 0.5 if cell_bias else 1.0
    w = LSTMWeights.random(spec, seed=0, scale=scale / np.sqrt(12))
    tensors = dict(w.tensors)
    tensors["cell_gate_bias"] = tensors["cell_gate_bias"] + cell_bias
    return LSTMWeights(spec, tensors)


def section_projection() -> None:
    xtr, xte, _ = _vowels()
    print("\n== projection: hidden zero point 0 (edgelstm) vs asymmetric (converter's) ==")
    for label, bias in (("symmetric hidden", 0.0), ("positive cell (cell bias +1)", 1.0)):
        w = _projection_model(bias)
        zero, plan, _ = evaluate_int8(w, xtr, xte)
        asym, plan_a, _ = evaluate_int8(w, xtr, xte, hidden="asymmetric")
        lo, hi = plan.direction().ranges["hidden"]
        hid = plan_a.direction().intermediates[4]
        print(f" {w.spec.describe()}, {label}: hidden range of o*tanh(c) per calibration:")
        calib = calibrate(w, xtr).direction().observers["hidden"]
        print(f"   [{calib.lo:.3f}, {calib.hi:.3f}] -> asymmetric zero point {hid.zero_point}")
        print(_row("hidden zp 0 (edgelstm)", zero))
        print(_row("hidden asymmetric (converter's choice)", asym))
        print(f"  -> asymmetric / zero-point-0 RMSE = {asym.rmse / zero.rmse:.1f}x")
        del lo, hi


# -- feature combinations ------------------------------------------------------------------------


def section_features() -> None:
    rng = np.random.default_rng(11)
    xc = rng.uniform(-1.5, 1.5, (48, 25, 8))
    xt = rng.uniform(-1.5, 1.5, (16, 25, 8))
    print("\n== every supported feature combination (I=8, N=16, T=25; uniform inputs) ==")
    rows = []
    for cifg, peep, proj, ln, clips in itertools.product(
        (False, True), (False, True), ("none", "proj", "proj+bias"), (False, True), (False, True)
    ):
        projection = proj != "none"
        spec = LSTMSpec(
            8, 16, 16 if peep or not projection else 8, cifg=cifg, peephole=peep,
            projection=projection, projection_bias=proj == "proj+bias", layer_norm=ln,
            cell_clip=1.0 if clips else 0.0, proj_clip=0.4 if clips and projection else 0.0,
        )  # fmt: skip
        stats, _, _ = evaluate_int8(LSTMWeights.random(spec, seed=7, scale=0.7), xc, xt)
        rows.append(stats)
        print(_row(spec.describe().removeprefix("LSTM "), stats))
    rmse = np.array([s.rmse_lsb for s in rows])
    mx = np.array([s.max_lsb for s in rows])
    print(
        f"  -> {len(rows)} combinations: RMSE {rmse.min():.2f}-{rmse.max():.2f} LSB "
        f"(median {np.median(rmse):.2f}); max {mx.min():.1f}-{mx.max():.1f} LSB"
    )


# -- range estimators ----------------------------------------------------------------------------


def section_estimators() -> None:
    rng = np.random.default_rng(0)
    xtr, xte, _ = _vowels()
    datasets = {
        "gauss": (rng.normal(size=(64, 50, 16)), rng.normal(size=(64, 50, 16))),
        "student-t3": (rng.standard_t(3, (64, 50, 16)), rng.standard_t(3, (64, 50, 16))),
        "vowels": (xtr, xte),
    }
    specs = {
        "plain64": {"n_cell": 64},
        "proj64/32": {"n_cell": 64, "n_output": 32, "projection": True},
        "ln64": {"n_cell": 64, "layer_norm": True},
    }
    names = ("minmax", "percentile", "mse")
    print("\n== range estimators: input estimator / state (output, hidden) estimator ==")
    print("   mean over 3 random-weight seeds; held-out RMSE and max abs error")
    for (dname, (xc, xt)), (sname, kw) in itertools.product(datasets.items(), specs.items()):
        spec = LSTMSpec(xc.shape[-1], **kw)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for seed in range(3):
            w = LSTMWeights.random(spec, seed=seed, scale=1.5 / np.sqrt(spec.n_input))
            calib = calibrate(w, xc)
            ref = reference_model(w, xt).output
            for a, b in itertools.product(names, names):
                est = {"input": a, "output": b, "hidden": b}
                plan = plan_model(calib, estimator=est)
                data, _ = compile_int8(w, xc, plan=plan)
                s = error_stats(run_tflite(data, xt), ref, plan.output.scale)
                results.setdefault((a, b), []).append((s.rmse, s.max_abs))
        base = np.mean([r[0] for r in results[("minmax", "minmax")]])
        for (a, b), vals in results.items():
            v = np.array(vals)
            print(
                f"  {dname:<10} {sname:<9} {a:>10}/{b:<10} rmse {v[:, 0].mean():.5f} "
                f"({v[:, 0].mean() / base - 1:+5.0%})  max {v[:, 1].mean():.4f}"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default="legacy,projection,features")
    p.add_argument("--units", default="64,256", help="LSTM sizes for the legacy comparison")
    p.add_argument("--epochs", type=int, default=8, help="training epochs of the Keras LSTM")
    args = p.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    for name in sections:
        if name == "legacy":
            section_legacy([int(u) for u in args.units.split(",")], args.epochs)
        elif name == "projection":
            section_projection()
        elif name == "features":
            section_features()
        elif name == "estimators":
            section_estimators()
        else:
            p.error(f"unknown section {name!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
