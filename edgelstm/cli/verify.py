"""``edgelstm verify MODEL [--against SOURCE] [--data X.npy] [--tolerance E]``.

Exit 0 when within tolerance (or none given), 1 when the max abs error exceeds it, 2 on
errors (unreadable files, mismatched data): scripts can gate a release on it.
"""

from __future__ import annotations

import argparse

from edgelstm.cli.args import positive_int

HELP = "compare a compiled model with the float64 reference of its source"
EXIT_TOLERANCE = 1
EPILOG = """examples:
  edgelstm verify model.tflite
  edgelstm verify model.tflite --against model.keras --data x.npy --tolerance 1e-5
  edgelstm verify model.onnx --sequences 64 --seq-len 20 --json
  edgelstm verify model_int8.tflite --against model.npz --data x.npy --explain
"""


def non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, found {text}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "verify",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="the compiled .tflite or .onnx file")
    p.add_argument(
        "--against",
        metavar="SOURCE",
        help="source model (.npz, .keras, .h5, .pt, .onnx, .tflite); default: the source "
        "named in the model's provenance when it is found (next to the model or in the "
        "current directory) with matching weights, else the model's own weights read back; "
        "the 'reference:' line of the output says which",
    )
    p.add_argument(
        "--data",
        help="input sequences [N, T, I] (.npy/.npz; [T, B, I] with --time-major), checked "
        "against the model's input width and fixed T; default: random",
    )
    p.add_argument(
        "--time-major",
        action="store_true",
        help="--data is time-major [T, B, I] (default: batch-major [N, T, I])",
    )
    p.add_argument(
        "--tolerance", type=non_negative_float, help="max abs error allowed (exit 1 above it)"
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "litert", "tf", "tflite-runtime", "tflm", "ort"),
        help="runtime to run the models on (auto: ai-edge-litert for .tflite, "
        "onnxruntime for .onnx; tflm: TFLite Micro's interpreter, fixed shapes)",
    )
    p.add_argument("--threads", type=positive_int, default=1, help="intra-op threads (1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--sequences", type=positive_int, help="number of random sequences")
    p.add_argument("--seq-len", type=positive_int, help="random sequence length (dynamic T)")
    p.add_argument(
        "--no-framework", action="store_true", help="do not run the source's own framework"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--explain",
        action="store_true",
        help="full-int8 .tflite: replay the integer kernel step by step against the float64 "
        "reference and report, per layer and tensor, the error in the tensor's own LSB, the "
        "fraction saturated, and which stage the output error comes from",
    )
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from edgelstm.measure.verify import format_result, verify

    result = verify(
        args.model,
        args.against,
        args.data,
        backend=args.backend,
        threads=args.threads,
        tolerance=args.tolerance,
        seed=args.seed,
        sequences=args.sequences,
        seq_len=args.seq_len,
        run_framework=not args.no_framework,
        time_major=args.time_major,
    )
    report = None
    if args.explain:
        from edgelstm.measure.explain_file import explain_file

        report = explain_file(
            args.model,
            args.against,
            args.data,
            time_major=args.time_major,
            seed=args.seed,
            sequences=args.sequences,
            seq_len=args.seq_len,
        )
    if args.json:
        out = result.to_dict()
        if report is not None:
            out["explain"] = report.to_dict()
        print(json.dumps(out, indent=2))
    else:
        print(format_result(result))
        if report is not None:
            print(report.format())
    return EXIT_TOLERANCE if result.passed is False else 0
