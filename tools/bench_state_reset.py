"""What the in-graph state reset costs: fused files that reset vs files that carry state.

Files of non-stateful models write zeros into the LSTM's state variables before the op on
every invoke (two ADDs per op; see ``edgelstm.targets.tflite.lstm_op._add_state_reset``).
This benchmark builds the same LSTM twice — as a stateless file (reset) and as a stateful
one (``stateful=True``: no reset, the file carries state) — in float, hybrid and full int8,
and times them interleaved (A B A B ...) in several fresh processes per runtime. It prints
the median p50 per file and the median of the per-process ratios reset / carry.

    python tools/bench_state_reset.py [--units 256] [--input 128] [--steps 50]
        [--processes 5] [--runs 300] [--tflite-runtime PYTHON]

``--tflite-runtime`` names a Python with tflite-runtime 2.14 installed (it needs numpy<2, so
it lives in its own venv; see tests/oracle/test_tflite_runtime_214.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
import numpy as np
runtime, runs, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
if runtime.startswith("tflite_runtime"):
    from tflite_runtime.interpreter import Interpreter, OpResolverType
else:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if runtime.endswith("builtin") \
    else OpResolverType.AUTO
interps = []
for f in files:
    it = Interpreter(model_path=f, num_threads=1, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = np.random.default_rng(0).uniform(-1, 1, d["shape"]).astype(d["dtype"])
    interps.append((it, d["index"], x))
times = [[] for _ in files]
for r in range(runs + 20):
    for k, (it, idx, x) in enumerate(interps):
        it.set_tensor(idx, x)
        t0 = time.perf_counter()
        it.invoke()
        if r >= 20:
            times[k].append(time.perf_counter() - t0)
print(json.dumps([float(np.median(t)) * 1e3 for t in times]))
"""


def build(root: Path, units: int, n_input: int, steps: int) -> dict[str, tuple[Path, Path]]:
    """(reset, carry) file pairs per quantization."""
    from edgelstm import CompileOptions, LSTMModel, LSTMSpec, LSTMWeights, to_tflite

    weights = LSTMWeights.random(LSTMSpec(n_input, units), seed=0, scale=0.5)
    cal = np.random.default_rng(1).uniform(-1, 1, (32, steps, n_input)).astype(np.float32)
    pairs = {}
    for q in ("none", "dynamic", "int8"):
        opts = CompileOptions(batch=1, seq_len=steps, quantize=q, calibration=cal)
        paths = []
        for stateful in (False, True):
            model = LSTMModel.of(weights, stateful=stateful)
            path = root / f"{q}_{'carry' if stateful else 'reset'}.tflite"
            path.write_bytes(to_tflite(model, opts))
            paths.append(path)
        pairs[q] = (paths[0], paths[1])
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=256)
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--processes", type=int, default=5)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--tflite-runtime", help="a Python with tflite-runtime 2.14 (numpy<2)")
    args = ap.parse_args()
    runtimes = {"litert (XNNPACK)": (sys.executable, "litert"),
                "litert (builtin)": (sys.executable, "litert_builtin")}  # fmt: skip
    if args.tflite_runtime:
        runtimes["tflite-runtime 2.14"] = (args.tflite_runtime, "tflite_runtime")
        runtimes["tflite-runtime 2.14 (builtin)"] = (args.tflite_runtime, "tflite_runtime_builtin")
    with tempfile.TemporaryDirectory() as tmp:
        pairs = build(Path(tmp), args.units, args.input, args.steps)
        print(
            f"LSTM {args.input}->{args.units}, T {args.steps}, batch 1, 1 thread; "
            f"{args.processes} fresh processes x {args.runs} interleaved invokes each"
        )
        print(f"{'runtime':30s} {'quantize':8s} {'reset ms':>9s} {'carry ms':>9s} {'ratio':>7s}")
        for label, (python, tag) in runtimes.items():
            for q, (reset, carry) in pairs.items():
                rows = []
                for k in range(args.processes):
                    files = [reset, carry] if k % 2 == 0 else [carry, reset]
                    out = subprocess.run(
                        [python, "-c", CHILD, tag, str(args.runs), *map(str, files)],
                        capture_output=True, text=True, check=True, timeout=600,
                    )  # fmt: skip
                    ms = json.loads(out.stdout.strip().splitlines()[-1])
                    rows.append(ms if k % 2 == 0 else ms[::-1])
                    time.sleep(0.1)
                r = statistics.median(a for a, _ in rows)
                c = statistics.median(b for _, b in rows)
                ratio = statistics.median(a / b for a, b in rows)
                print(f"{label:30s} {q:8s} {r:9.3f} {c:9.3f} {ratio:7.3f}")


if __name__ == "__main__":
    main()
