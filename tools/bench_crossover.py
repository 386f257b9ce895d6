"""Where unrolling beats a WHILE loop: the two recurrence schedules of the unfused TFLite lowering.

Times the fully unrolled recurrence against the WHILE loop with the automatic steps per trip
(:func:`edgelstm.targets.tflite.unfused.emit.while_plan`) over T = 5, 10, 20, 50 at H = 64 and 256,
dynamic-range and float (input 128, batch 1, 1 thread), interleaved. Unrolling copies the
recurrent weights once per step, so it wins only while those copies stay small: the
measurement behind ``edgelstm.targets.tflite.unfused.schedule.UNROLL_BUDGET``.

    .venv/bin/python tools/bench_crossover.py [--runs 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

N_INPUT = 128


def crossover(runs: int) -> str:
    from edgelstm.ir.model import LSTMModel
    from edgelstm.ir.options import CompileOptions, UnfusedOptions
    from edgelstm.ir.spec import LSTMSpec
    from edgelstm.ir.weights import LSTMWeights
    from edgelstm.measure.bench import bench, text_table
    from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused
    from edgelstm.targets.tflite.unfused.schedule import recurrent_bytes, while_plan

    rows = []
    with tempfile.TemporaryDirectory(prefix="edgelstm-crossover-") as tmp:
        for units, quant in ((64, "dynamic"), (256, "dynamic"), (256, "none")):
            spec = LSTMSpec(n_input=N_INPUT, n_cell=units)
            model = LSTMModel.of(LSTMWeights.random(spec, seed=0))
            for steps in (5, 10, 20, 50):
                options = CompileOptions(batch=1, seq_len=steps, quantize=quant)
                chunk, segment = while_plan(model, steps, quant)
                paths = []
                for sched in ("unrolled", "while"):
                    path = Path(tmp, f"{units}_{quant}_{steps}_{sched}.tflite")
                    schedule = UnfusedOptions(sched, chunk, segment)  # type: ignore[arg-type]
                    path.write_bytes(to_tflite_unfused(model, replace(options, unfused=schedule)))
                    paths.append(path)
                unr, whl = bench(paths, runs=runs, memory=False, show_progress=False)
                copies = recurrent_bytes(model, quant) * steps / 2**20
                rows.append([f"H={units} {quant}", str(steps), f"{copies:.1f}",
                             f"{unr.p50_ms:.3f}", f"{whl.p50_ms:.3f} (K={chunk})",
                             "unrolled" if unr.p50_ms < whl.p50_ms else "WHILE"])  # fmt: skip
    head = ("model", "T", "T x weights MB", "unrolled ms", "WHILE ms", "faster")
    return text_table(head, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    print(crossover(args.runs))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
