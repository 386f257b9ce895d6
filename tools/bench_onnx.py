"""Benchmark the ONNX emitter on onnxruntime: 1 thread, batch 1, T=50, interleaved runs, medians.

1. composite (Scan; Loop for comparison) vs the fused LSTM op, same plain weights, H=256 and
   H=1024 (targets: composite <= 1.5x and <= 1.1x the fused time);
2. dynamic int8 vs float: speed-up and max |error| vs the float64 reference;
3. if tf2onnx is installed: a peephole + projection TF ``LSTMCell`` converted by tf2onnx
   (a Loop graph) vs edgelstm's emitter (target <= 1.0x).

Usage: ``.venv/bin/python tools/bench_onnx.py [--rounds N] [--skip-tf]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import onnx
import onnxruntime as ort

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights, reference_model, to_onnx
from edgelstm.ir.options import CompileOptions, OnnxOptions

T, BATCH, N_INPUT = 50, 1, 128


@dataclass
class Row:
    section: str
    name: str
    ms: float
    ratio: float | None = None
    target: str = ""
    err: float | None = None


def session(model: onnx.ModelProto | bytes) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def interleaved(runs: dict[str, Callable[[], object]], rounds: int, warmup: int = 10) -> dict:
    """Median seconds per call, the candidates alternating within every round."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _runner(sess: ort.InferenceSession, x: np.ndarray) -> Callable[[], list]:
    name = sess.get_inputs()[0].name
    return lambda: sess.run(None, {name: x})


def first_output(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _input(n_input: int = N_INPUT, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (BATCH, T, n_input)).astype(np.float32)


def composite(options: CompileOptions, recurrence: str = "scan") -> CompileOptions:
    """``options`` forcing the composite graph with this recurrence."""
    onnx_options = OnnxOptions(force_composite=True, recurrence=recurrence)  # type: ignore[arg-type]
    return dataclasses.replace(options, onnx=onnx_options)


def bench_composite_vs_fused(hidden: int, rounds: int, rows: list[Row]) -> None:
    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(N_INPUT, hidden), seed=hidden))
    options = CompileOptions(batch=BATCH, seq_len=T)
    x = _input()
    ref = reference_model(model, x).output
    sessions = {
        "fused LSTM": session(to_onnx(model, options)),
        "composite Scan": session(to_onnx(model, composite(options))),
        "composite Loop": session(to_onnx(model, composite(options, "loop"))),
    }
    med = interleaved({k: _runner(s, x) for k, s in sessions.items()}, rounds)
    target = {256: "<= 1.5x", 1024: "<= 1.1x"}.get(hidden, "")
    base = med["fused LSTM"]
    for name, s in sessions.items():
        err = float(np.abs(first_output(s, x) - ref).max())
        rows.append(
            Row(
                f"H={hidden}",
                name,
                med[name] * 1e3,
                med[name] / base,
                target if name == "composite Scan" else "",
                err,
            )
        )


def bench_dynamic(spec: LSTMSpec, label: str, rounds: int, rows: list[Row]) -> None:
    model = LSTMModel.of(LSTMWeights.random(spec, seed=spec.n_cell))
    x = _input(spec.n_input, seed=1)
    ref = reference_model(model, x).output
    float_s = session(to_onnx(model, CompileOptions(batch=BATCH, seq_len=T)))
    int8_model = to_onnx(model, CompileOptions(batch=BATCH, seq_len=T, quantize="dynamic"))
    int8_s = session(int8_model)
    med = interleaved({"float": _runner(float_s, x), "int8": _runner(int8_s, x)}, rounds)
    for name, s in (("float", float_s), ("dynamic int8", int8_s)):
        key = "float" if name == "float" else "int8"
        err = float(np.abs(first_output(s, x) - ref).max())
        rows.append(Row(label, name, med[key] * 1e3, med[key] / med["float"], "", err))


def bench_tf2onnx(rounds: int, rows: list[Row]) -> None:
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError as exc:
        print(f"(tf2onnx section skipped: {exc})")
        return
    from edgelstm import from_tf_cell

    hidden, proj = 256, 128
    cell = tf.compat.v1.nn.rnn_cell.LSTMCell(hidden, use_peepholes=True, num_proj=proj)
    cell.build(tf.TensorShape([None, N_INPUT]))
    spec_in = tf.TensorSpec([BATCH, T, N_INPUT], tf.float32, name="x")

    @tf.function(input_signature=[spec_in])
    def run_cell(x):
        y, _ = tf.compat.v1.nn.dynamic_rnn(cell, x, dtype=tf.float32)
        return y

    tf_model, _ = tf2onnx.convert.from_function(run_cell, input_signature=[spec_in], opset=17)
    model = from_tf_cell(cell)
    ours = to_onnx(model, CompileOptions(batch=BATCH, seq_len=T))
    x = _input(seed=2)
    ref = reference_model(model, x).output
    tf_s, our_s = session(tf_model), session(ours)
    med = interleaved({"tf2onnx": _runner(tf_s, x), "edgelstm": _runner(our_s, x)}, rounds)
    loops = sorted({n.op_type for n in tf_model.graph.node} & {"Loop", "Scan", "LSTM"})
    ours_ops = sorted({n.op_type for n in ours.graph.node} & {"Loop", "Scan", "LSTM"})
    for name, s, ops in (("tf2onnx", tf_s, loops), ("edgelstm", our_s, ours_ops)):
        err = float(np.abs(first_output(s, x) - ref).max())
        rows.append(
            Row(
                "peephole+proj 256/128",
                f"{name} ({'+'.join(ops)})",
                med[name] * 1e3,
                med[name] / med["tf2onnx"],
                "<= 1.0x" if name == "edgelstm" else "",
                err,
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="rounds at H=256 (default 300)")
    parser.add_argument("--skip-tf", action="store_true", help="skip the tf2onnx comparison")
    args = parser.parse_args()
    big = max(20, args.rounds // 8)
    rows: list[Row] = []
    bench_composite_vs_fused(256, args.rounds, rows)
    bench_composite_vs_fused(1024, big, rows)
    bench_dynamic(LSTMSpec(N_INPUT, 256), "int8 fused H=256", args.rounds, rows)
    bench_dynamic(LSTMSpec(N_INPUT, 1024), "int8 fused H=1024", big, rows)
    bench_dynamic(
        LSTMSpec(N_INPUT, 256, 128, peephole=True, projection=True),
        "int8 composite 256/128",
        args.rounds,
        rows,
    )
    if not args.skip_tf:
        bench_tf2onnx(args.rounds, rows)
    print(f"\nonnxruntime {ort.__version__}, 1 thread, batch {BATCH}, T {T}, input {N_INPUT}")
    print(f"{'case':24} {'model':28} {'median ms':>10} {'ratio':>7} {'target':>8} {'max err':>9}")
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        err = f"{r.err:.1e}" if r.err is not None else ""
        print(f"{r.section:24} {r.name:28} {r.ms:10.3f} {ratio:>7} {r.target:>8} {err:>9}")


if __name__ == "__main__":
    main()
