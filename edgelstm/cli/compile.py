"""``edgelstm compile SOURCE -o OUT.(tflite|onnx)``: import a model and emit it.

``--optimize latency --max-error E [--data X.npy]`` instead builds every variant for the
target (fused / unfused TFLite or fused / composite ONNX, each float / dynamic / int8),
verifies each against the float64 reference, times the survivors on this machine and writes
the fastest within the error budget (see :mod:`edgelstm.measure.optimize`), printing the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgelstm.cli.args import non_negative_int, positive_float, positive_int
from edgelstm.errors import UnsupportedError

HELP = "compile a source model to .tflite or .onnx"
EPILOG = """examples:
  edgelstm compile model.keras -o model.tflite
  edgelstm compile model.keras -o model.onnx --quantize dynamic
  edgelstm compile lstm.pt -o lstm.tflite --batch-first --prefix lstm. --head fc.
  edgelstm compile exported.onnx -o lstm.tflite --lstm /lstm/LSTM
  edgelstm compile vad.onnx -o vad.tflite --lstm /decoder/rnn/LSTM --streaming
  edgelstm compile model.npz -o model.tflite --quantize int8 --calibration data.npy
  edgelstm compile model.keras -o best.tflite --optimize latency --max-error 1e-3
  edgelstm compile model.npz -o mcu.tflite --target tflm --seq-len 29 --calibration x.npy \
      --max-arena 64KB
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compile",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source",
        help="weights/model file: .npz, .onnx, .tflite, .keras, .h5, .pt, .pt2 (torch.export)",
    )
    p.add_argument("-o", "--output", required=True, help="output file (.tflite or .onnx)")
    p.add_argument(
        "--batch",
        type=non_negative_int,
        default=None,
        help="fixed batch size; default (or 0): dynamic, so the file runs any number of "
        "sequences per invoke (no importer records a fixed batch to keep)",
    )
    p.add_argument("--seq-len", type=positive_int, default=None, help="fixed sequence length")
    p.add_argument("--time-major", action="store_true", help="input as [T, B, I]")
    p.add_argument(
        "--quantize",
        choices=("none", "dynamic", "int8", "int16x8"),
        default=None,
        help="quantization (default: none; int8 with --target tflm); int16x8 (.tflite, LSTM-only "
        "sources): int16 activations, int8 weights (the all-integer lowering; needs "
        "--calibration and --seq-len; float I/O; runs on LiteRT, layer norm only on TFLM)",
    )
    p.add_argument(
        "--target",
        choices=("tflite", "tflm"),
        default="tflite",
        help="tflm: a .tflite for TensorFlow Lite Micro (microcontrollers): full int8 with int8 "
        "I/O, fixed --seq-len (batch 1 unless --batch), only ops TFLM has; checked to load "
        "on TFLM, its arena measured",
    )
    p.add_argument(
        "--max-arena",
        metavar="SIZE",
        help="with --target tflm: refuse unless the TFLM arena fits SIZE (e.g. 64KB, 1MB)",
    )
    p.add_argument(
        "--calibration",
        help="calibration data: [N, T, I] sequences (.npy, .npz, or FILE.npz:KEY); needed by "
        "--quantize int8 / int16x8; with --quantize dynamic it chooses the int8 weight codes "
        "(TFLite, ONNX: compensated rounding) and the ONNX weight scheme. For a whole .onnx "
        "graph: the graph's own inputs (.npz of input name -> [N, *input shape], or .npy for "
        "a one-input graph)",
    )
    p.add_argument(
        "--int8-io",
        action="store_true",
        help="with --quantize int8 / int16x8 (.tflite): int8 / int16 input/output tensors "
        "(scale and zero point in the file) instead of float I/O with QUANTIZE/DEQUANTIZE "
        "around the graph",
    )
    p.add_argument(
        "--int8-lowering",
        choices=("fused", "integer", "auto"),
        default="fused",
        help="with --quantize int8 (.tflite): fused (default) = the fused int8 LSTM op (its "
        "gate accumulators are fixed at Q3.12, ±8); integer = the all-integer unfused lowering "
        "(int16 gates at scales chosen from calibration; int8 I/O, fixed batch and --seq-len, "
        "no layer norm); auto = whichever has the lower error on a held-out quarter of the "
        "calibration data",
    )
    p.add_argument(
        "--weight-planes",
        type=int,
        choices=(1, 2),
        default=1,
        help="with --quantize int16x8, --int8-lowering integer or --target tflm: 2 stores each "
        "weight matrix as two int8 planes (the codes and what they miss), two 16x8 products "
        "added in int16: ~15-bit weights on the same kernels, 2x the weight bytes and "
        "products, for models whose int8 weights alone exceed an error budget (char LM: "
        "0.44%% -> 0.05%% flipped next-character predictions)",
    )
    p.add_argument(
        "--onnx-dynamic-priority",
        choices=("accuracy", "portable"),
        default=None,
        help="with --quantize dynamic (.onnx): how the int8 weight scheme is chosen among the "
        "measured candidates. accuracy (default): never less accurate than onnxruntime's own "
        "quantize_dynamic defaults, on this CPU nor (simulated) on x86 CPUs without VNNI, the "
        "fastest such (exporter corpus on a VNNI CPU: 1.00x their RMS error, 0.97x their "
        "latency; there that is their own full-range int8, which saturates without VNNI as "
        "theirs does). portable: judged by the error simulated without VNNI (safe int8 "
        "weights: 1.35x their error on a VNNI CPU, the same latency, far more accurate "
        "without VNNI)",
    )
    p.add_argument(
        "--optimize",
        choices=("latency",),
        help="search every variant and write the fastest within --max-error",
    )
    p.add_argument(
        "--max-error",
        type=positive_float,
        help="with --optimize: max abs output error vs the float64 reference",
    )
    p.add_argument(
        "--data",
        help="with --optimize: inputs (.npy/.npz [N, T, I]) to verify on and calibrate int8 "
        "with (default: seeded random sequences)",
    )
    p.add_argument(
        "--runs", type=positive_int, default=100, help="with --optimize: timed runs per variant"
    )
    p.add_argument(
        "--streaming",
        action="store_true",
        help="keep the LSTM state between invokes (a stateful model): a fused .tflite carries "
        "it in its variables (no reset in the graph); .onnx and unfused files take initial "
        "states as inputs and return the final ones. Default: every invoke starts from zero",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="allow -o to be the source file itself (refused otherwise)",
    )
    p.add_argument(
        "--lstm",
        metavar="NAME",
        help="ONNX sources: compile only this LSTM node (or a chain 'A,B'; names or paths as "
        "'edgelstm inspect model.onnx' lists them), from its X to its Y, whatever else the "
        "graph computes",
    )
    torch = p.add_argument_group("PyTorch state_dict sources (.pt/.pth)")
    torch.add_argument(
        "--batch-first",
        action="store_true",
        default=None,
        help="the nn.LSTM had batch_first=True (input [B, T, I]); default: PyTorch's "
        "time-major [T, B, I]",
    )
    torch.add_argument(
        "--prefix",
        metavar="PREFIX",
        help="key prefix of the nn.LSTM to take (e.g. 'encoder.lstm.') when the state_dict "
        "holds more than the LSTM",
    )
    torch.add_argument(
        "--head",
        metavar="PREFIX",
        help="key prefix of an nn.Linear in the same state_dict (e.g. 'fc.') to apply to "
        "every output step as the dense head",
    )
    return p


def _refuse_overwriting_source(source: str, out: Path, overwrite: bool) -> None:
    """``-o`` naming the source itself (same path, symlink or hard link) would destroy it."""
    import os

    try:
        same = out.exists() and os.path.samefile(source, out)
    except OSError:
        same = False
    if same and not overwrite:
        raise UnsupportedError(
            "compile",
            f"-o {out} is the source {source} itself (same file after resolving symlinks and "
            "hard links); writing it would replace your source: choose another -o, or pass "
            "--overwrite",
        )


def _optimize(args: argparse.Namespace, model, options, out: Path) -> int:
    from edgelstm._io import write_bytes_atomic
    from edgelstm.measure.optimize import NoCandidateError, optimize_latency

    if args.max_error is None:
        raise UnsupportedError("compile", "--optimize latency needs --max-error E")
    if args.quantize != "none" or args.calibration is not None:
        raise UnsupportedError(
            "compile",
            "--optimize latency chooses the quantization itself: drop --quantize/--calibration "
            "(int8 variants calibrate on --data)",
        )
    try:
        data, table = optimize_latency(
            model, out.suffix, args.max_error, args.data, options=options, runs=args.runs
        )
    except NoCandidateError as exc:
        print(exc.table.format())
        raise UnsupportedError(
            "compile", f"no variant within --max-error {args.max_error:g}"
        ) from None
    print(table.format())
    write_bytes_atomic(out, data)
    best = table.chosen
    print(
        f"wrote {out} ({len(data):,} bytes): {model.describe()}, {best.name} "
        f"[{best.quantize}], max error {best.error:.2e}, p50 {best.p50_ms:.3f} ms"
    )
    return 0


def _check_target(args: argparse.Namespace, suffix: str) -> int | None:
    """Resolve ``--quantize`` for the target; the --max-arena budget in bytes (or None)."""
    if args.target != "tflm":
        args.quantize = args.quantize or "none"
        if args.max_arena is not None:
            raise UnsupportedError("compile", "--max-arena applies with --target tflm only")
        return None
    from edgelstm.measure.micro import parse_bytes

    if suffix != ".tflite" or args.optimize is not None:
        raise UnsupportedError(
            "compile", "--target tflm writes one .tflite file (-o X.tflite, no --optimize)"
        )
    if args.quantize in ("none", "dynamic"):
        why = "hybrid LSTMs return NaN there" if args.quantize == "dynamic" else "it is float"
        raise UnsupportedError(
            "compile --target tflm",
            f"--quantize {args.quantize} is not for TFLite Micro ({why}); drop --quantize "
            "(tflm is full int8) or use --quantize int8",
        )
    args.quantize = "int16x8" if args.quantize == "int16x8" else "int8"
    return None if args.max_arena is None else parse_bytes(args.max_arena)


def _tflm(model, options, out: Path, max_arena: int | None) -> int:
    from edgelstm._io import write_bytes_atomic
    from edgelstm.measure.micro import compile_tflm

    build = compile_tflm(model, options, max_arena)
    write_bytes_atomic(out, build.data)
    print(
        f"wrote {out} ({len(build.data):,} bytes): {model.describe()}, quantize={options.quantize}"
    )
    print(build.summary())
    return 0


def run(args: argparse.Namespace) -> int:
    from edgelstm.importers.load import load_source
    from edgelstm.ir.options import CompileOptions, Int8Options, OnnxOptions

    out = Path(args.output)
    suffix = out.suffix.lower()
    max_arena = _check_target(args, suffix)
    if suffix not in (".tflite", ".onnx"):
        raise UnsupportedError(
            "compile", f"output must end in .tflite or .onnx, found {out.name!r}"
        )
    if args.int8_io and (args.quantize not in ("int8", "int16x8") or suffix != ".tflite"):
        raise UnsupportedError(
            "compile",
            "--int8-io applies to full-integer TFLite only (--quantize int8 or int16x8: "
            "integer I/O tensors; .tflite)",
        )
    if args.int8_lowering != "fused" and (
        args.quantize != "int8" or suffix != ".tflite" or args.target != "tflite"
    ):
        raise UnsupportedError(
            "compile",
            "--int8-lowering applies to full-integer TFLite for LiteRT only (--quantize int8, "
            ".tflite, --target tflite); --target tflm picks its lowering itself",
        )
    if args.onnx_dynamic_priority is not None and (args.quantize != "dynamic" or suffix != ".onnx"):
        raise UnsupportedError(
            "compile",
            "--onnx-dynamic-priority applies to dynamic int8 ONNX only (--quantize dynamic, "
            "-o X.onnx); drop it",
        )
    if args.weight_planes != 1 and not _integer_lowering(args, suffix):
        raise UnsupportedError(
            "compile",
            "--weight-planes 2 applies to the all-integer TFLite lowering only: add "
            "--quantize int16x8, or --quantize int8 with --int8-lowering integer or --target tflm",
        )
    if args.optimize is None and (args.max_error is not None or args.data is not None):
        raise UnsupportedError("compile", "--max-error/--data only apply with --optimize latency")
    _refuse_overwriting_source(args.source, out, args.overwrite)
    from edgelstm.cli.compile_whole import compile_whole

    code = compile_whole(args, out)  # reads its own calibration (token ids are [N, T])
    if code is not None:
        return code
    calibration = None
    if args.calibration is not None:
        from edgelstm.measure.data import load_calibration

        calibration = load_calibration(args.calibration)
    model = load_source(
        args.source,
        batch_first=args.batch_first,
        prefix=args.prefix,
        head=args.head,
        lstm=args.lstm,
    )
    if Path(args.source).suffix.lower() in (".pt", ".pth") and args.batch_first is None:
        import sys

        print(
            f"note: {Path(args.source).name}: a state_dict does not record batch_first; "
            "compiled as PyTorch's default time-major [T, B, I] (pass --batch-first for "
            "batch_first=True)",
            file=sys.stderr,
        )
    model = _streaming(model, args.streaming, Path(args.source).name)
    options = CompileOptions(
        batch=args.batch or None,  # None (the default) or 0: dynamic
        seq_len=args.seq_len,
        time_major=True if args.time_major else None,
        quantize=args.quantize,
        calibration=calibration,
        source=Path(args.source).name,
        int8=Int8Options(
            io=args.int8_io, lowering=args.int8_lowering, weight_planes=args.weight_planes
        ),
        onnx=OnnxOptions(dynamic_priority=args.onnx_dynamic_priority or "accuracy"),
        target=args.target,
    )
    if args.target == "tflm":
        return _tflm(model, options, out, max_arena)
    if args.optimize == "latency":
        return _optimize(args, model, options, out)
    if suffix == ".tflite" and args.int8_lowering != "fused":
        return _int8_lowering(model, options, out)
    if suffix == ".tflite":
        from edgelstm.targets.tflite import save_tflite

        save_tflite(model, out, options)
    else:
        from edgelstm.targets.onnx import save_onnx

        save_onnx(model, out, options)
    size = out.stat().st_size
    print(f"wrote {out} ({size:,} bytes): {model.describe()}, quantize={args.quantize}")
    return 0


def _integer_lowering(args: argparse.Namespace, suffix: str) -> bool:
    """Whether the flags select the all-integer TFLite lowering (one LSTM stack)."""
    if suffix != ".tflite":
        return False
    return args.quantize == "int16x8" or (
        args.quantize == "int8" and (args.int8_lowering == "integer" or args.target == "tflm")
    )


def _int8_lowering(model, options, out: Path) -> int:
    """``--int8-lowering integer|auto``: write the chosen lowering, say which and why."""
    import sys

    from edgelstm._io import write_bytes_atomic
    from edgelstm.measure.int8_choice import to_tflite_int8_choice

    data, choice = to_tflite_int8_choice(model, options)
    write_bytes_atomic(out, data)
    measured = ", ".join(f"{k} {v:.2f}" for k, v in choice.rmse_lsb.items())
    why = f" ({choice.reason}{': output RMSE LSB ' + measured if measured else ''})"
    print(
        f"int8 lowering: {choice.lowering}{why if choice.reason else ''}"
        + ("; int8 input/output tensors, fixed shape" if choice.lowering == "integer" else ""),
        file=sys.stderr,
    )
    print(f"wrote {out} ({len(data):,} bytes): {model.describe()}, quantize=int8")
    return 0


def _streaming(model, streaming: bool, source: str):
    """``--streaming`` makes the model stateful; without it, say when the source's LSTM took
    its state from graph inputs (a streaming ONNX graph) that the file now starts at zero."""
    import dataclasses
    import sys

    if streaming:
        return dataclasses.replace(model, stateful=True)
    inputs = model.provenance.get("initial_state_inputs")
    if inputs and not model.stateful:
        print(
            f"note: {source}: the LSTM reads its initial state from graph inputs "
            f"({', '.join(map(str, inputs))}); the compiled file starts every invoke from "
            "zero state (set one with Runner.run(x, initial_state=...)); pass --streaming "
            "for a file that keeps its state between invokes",
            file=sys.stderr,
        )
    return model
