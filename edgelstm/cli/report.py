"""``edgelstm report MODEL... [--against SOURCE] -o report.html``: verify + bench + plots."""

from __future__ import annotations

import argparse

from edgelstm.cli.args import non_negative_int, positive_float, positive_int

HELP = "verify and bench models, write a self-contained HTML report and a Markdown twin"
EPILOG = """examples:
  edgelstm report m.tflite m_int8.tflite m.onnx -o report.html
  edgelstm report m.tflite m.onnx --against model.keras --data x.npy --title "speaker id"
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="+", help=".tflite / .onnx variants to compare")
    p.add_argument("-o", "--output", default="report.html", help="HTML file (report.html)")
    p.add_argument("--markdown", help="Markdown twin (default: OUTPUT with .md)")
    p.add_argument("--against", metavar="SOURCE", help="source model for the reference")
    p.add_argument("--data", help="input sequences [N, T, I] (.npy/.npz); default: random")
    p.add_argument("--threads", type=positive_int, default=1, help="intra-op threads (1)")
    p.add_argument("--runs", type=positive_int, default=100, help="timed runs per model")
    p.add_argument(
        "--warmup", type=non_negative_int, default=10, help="untimed runs per model first (10)"
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "litert", "tf", "tflite-runtime", "tflm", "ort"),
        help="runtime to run the models on (auto: ai-edge-litert for .tflite, "
        "onnxruntime for .onnx; tflm: TFLite Micro's interpreter, fixed shapes)",
    )
    p.add_argument("--seq-len", type=positive_int, help="steps for a dynamic time dim")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--title", help="report title")
    p.add_argument(
        "--max-error",
        type=positive_float,
        default=1e-3,
        help="error budget (max abs vs float64) the closing verdict picks a file for (1e-3)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from edgelstm.measure.report import build_report, write_report

    rep = build_report(
        args.models,
        against=args.against,
        data=args.data,
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
        backend=args.backend,
        seq_len=args.seq_len,
        memory=not args.no_memory,
        title=args.title,
        max_error=args.max_error,
    )
    html, md = write_report(rep, args.output, args.markdown)
    print(f"wrote {html} ({html.stat().st_size:,} bytes) and {md}")
    for note in rep.notes:
        print(f"note: {note}")
    return 0
