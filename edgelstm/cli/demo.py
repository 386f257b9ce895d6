"""``edgelstm demo [--out-dir DIR] [--runs N] [--threads N] [--no-report] [--model M]``."""

from __future__ import annotations

import argparse

from edgelstm.cli.compile import positive_int

HELP = "the whole pipeline on a bundled trained model: 5 variants, accuracy, error, latency"
DESCRIPTION = (
    "Compile the bundled Japanese Vowels speaker classifier to TFLite float32 / hybrid / full "
    "int8 and ONNX float32 / dynamic int8, run each on its own interpreter, and print test "
    "accuracy, max error vs the float64 reference, p50 latency and size; write an HTML + "
    "Markdown report. No network, no TensorFlow or PyTorch."
)
EPILOG = """examples:
  edgelstm demo
  edgelstm demo --out-dir /tmp/jv --runs 50 --model jv-cifg-ln
"""
MODEL_CHOICES = ("jv", "jv-cifg-ln")  # = edgelstm.demo.run.MODELS (not imported: keep --help light)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out-dir",
        metavar="DIR",
        default="edgelstm-demo",
        help="where the models, the report and the JSON go (./edgelstm-demo)",
    )
    p.add_argument(
        "--runs", metavar="N", type=positive_int, default=200, help="timed runs per variant (200)"
    )
    p.add_argument(
        "--threads", metavar="N", type=positive_int, default=1, help="intra-op threads (1)"
    )
    p.add_argument("--no-report", action="store_true", help="skip the HTML/Markdown report")
    p.add_argument(
        "--model",
        choices=MODEL_CHOICES,
        default="jv",
        help="jv: peepholes + projection (default); jv-cifg-ln: CIFG + layer norm",
    )
    return p


def run(args: argparse.Namespace) -> int:
    import sys

    from edgelstm.demo.run import run_demo
    from edgelstm.demo.table import print_table, summary_lines

    def log(msg: str) -> None:
        print(f"demo: {msg}", file=sys.stderr, flush=True)

    result = run_demo(
        args.out_dir,
        model=args.model,
        runs=args.runs,
        threads=args.threads,
        report=not args.no_report,
        log=log,
    )
    print_table(result)
    for line in summary_lines(result):
        print(line)
    return 0
