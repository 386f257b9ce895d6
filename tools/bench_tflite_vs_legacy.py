"""Latency of edgelstm's fused-LSTM .tflite vs the legacy TF converter's, same weights.

A tf_keras LSTM (units 256, input 128, T 50, batch 1) is converted by the legacy converter
(``TFLiteConverter.from_keras_model``, TF_USE_LEGACY_KERAS=1), float and dynamic-range. The
same weights go through edgelstm (``to_tflite``, float and ``quantize="dynamic"``). Each file
runs on ai-edge-litert's Interpreter with 1 thread; invokes are interleaved across the files
(round-robin, so machine load hits all alike) and the median of ``--repeats`` invokes each is
reported, with the ratio ours / legacy and the max output difference.

    .venv/bin/python tools/bench_tflite_vs_legacy.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

UNITS, FEATURES, STEPS, BATCH = 256, 128, 50, 1
GATES = ("input", "forget", "cell", "output")  # Keras order i, f, c, o


def build_files() -> tuple[dict[str, bytes], np.ndarray]:
    import tensorflow as tf
    import tf_keras

    from edgelstm import LSTMModel, LSTMWeights
    from edgelstm.ir.options import CompileOptions
    from edgelstm.targets.tflite import to_tflite

    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input((STEPS, FEATURES), batch_size=BATCH)
    lstm = tf_keras.layers.LSTM(
        UNITS, return_sequences=True, bias_initializer=tf_keras.initializers.RandomNormal(seed=1)
    )
    keras_model = tf_keras.Model(inp, lstm(inp))
    files = {}
    for kind in ("float", "dynamic"):
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        if kind == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        files[f"legacy {kind}"] = bytes(converter.convert())
    kernel, recurrent, bias = (v.numpy() for v in lstm.weights)
    tensors = {}
    for k, gate in enumerate(GATES):
        cols = slice(k * UNITS, (k + 1) * UNITS)
        tensors[f"input_to_{gate}_weights"] = kernel[:, cols].T
        tensors[f"recurrent_to_{gate}_weights"] = recurrent[:, cols].T
        tensors[f"{gate}_gate_bias"] = bias[cols]
    model = LSTMModel.of(LSTMWeights.from_tensors(tensors))
    for kind, quantize in (("float", "none"), ("dynamic", "dynamic")):
        options = CompileOptions(batch=BATCH, seq_len=STEPS, quantize=quantize)
        files[f"edgelstm {kind}"] = to_tflite(model, options)
    x = np.random.default_rng(0).normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    return files, x


def bench(files: dict[str, bytes], x: np.ndarray, repeats: int, warmup: int = 20):
    from ai_edge_litert.interpreter import Interpreter

    interps = {}
    for name, data in files.items():
        it = Interpreter(model_content=data, num_threads=1)
        it.allocate_tensors()
        index = it.get_input_details()[0]["index"]
        it.set_tensor(index, x)
        interps[name] = (it, index)
    times: dict[str, list[float]] = {name: [] for name in files}
    outputs = {}
    for k in range(warmup + repeats):
        for name, (it, index) in interps.items():
            it.reset_all_variables()
            it.set_tensor(index, x)
            t0 = time.perf_counter()
            it.invoke()
            dt = time.perf_counter() - t0
            if k >= warmup:
                times[name].append(dt)
            if k == 0:
                outputs[name] = it.get_tensor(it.get_output_details()[0]["index"]).copy()
    return {n: float(np.median(t)) * 1e3 for n, t in times.items()}, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300, help="timed invokes per file")
    args = parser.parse_args()
    files, x = build_files()
    medians, outputs = bench(files, x, args.repeats)
    print(
        f"LSTM units={UNITS} input={FEATURES} T={STEPS} batch={BATCH}, 1 thread, "
        f"median of {args.repeats} interleaved invokes (ai-edge-litert Interpreter)"
    )
    print(
        f"{'variant':<9} {'legacy ms':>10} {'edgelstm ms':>12} {'ratio':>7} "
        f"{'legacy KB':>10} {'edgelstm KB':>12} {'max |diff|':>11}"
    )
    for kind in ("float", "dynamic"):
        legacy, ours = f"legacy {kind}", f"edgelstm {kind}"
        diff = float(np.max(np.abs(outputs[legacy] - outputs[ours])))
        print(
            f"{kind:<9} {medians[legacy]:>10.3f} {medians[ours]:>12.3f} "
            f"{medians[ours] / medians[legacy]:>7.3f} {len(files[legacy]) / 1024:>10.1f} "
            f"{len(files[ours]) / 1024:>12.1f} {diff:>11.2e}"
        )


if __name__ == "__main__":
    main()
