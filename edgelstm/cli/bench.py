"""``edgelstm bench MODEL... [--threads N] [--runs N] [--warmup N] [--json]``."""

from __future__ import annotations

import argparse

from edgelstm.cli.args import non_negative_int, positive_int

HELP = "latency percentiles, throughput, size and peak memory of models, interleaved"
EPILOG = """examples:
  edgelstm bench model.tflite model.onnx
  edgelstm bench model.tflite --threads 4 --runs 1000 --json
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bench",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="+", help=".tflite / .onnx files (timed round-robin)")
    p.add_argument("--threads", type=positive_int, default=1, help="intra-op threads")
    p.add_argument("--runs", type=positive_int, default=200, help="timed runs per model")
    p.add_argument("--warmup", type=non_negative_int, default=20, help="untimed runs first")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "litert", "tf", "tflite-runtime", "tflm", "ort"),
        help="runtime to run the models on (auto: ai-edge-litert for .tflite, "
        "onnxruntime for .onnx; tflm: TFLite Micro's interpreter, also prints the arena)",
    )
    p.add_argument("--batch", type=positive_int, help="batch size for a dynamic batch dim")
    p.add_argument("--seq-len", type=positive_int, help="steps for a dynamic time dim (50)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--json", action="store_true", help="print JSON (with every latency)")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from edgelstm.measure.bench import bench, format_results

    results = bench(
        args.models,
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
        backend=args.backend,
        batch=args.batch,
        seq_len=args.seq_len,
        memory=not args.no_memory,
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(format_results(results))
    return 0
