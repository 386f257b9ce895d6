"""``edgelstm compile model.pt2 -o out.onnx``: a saved ``torch.export`` program, whole.

The program goes through torch.onnx's dynamo exporter and edgelstm's whole-graph rewrite
(:func:`edgelstm.whole.from_torch_module`). A .pt2 holds no Python module to cut at its
``nn.LSTM`` calls, so ``.tflite`` output is refused with the Python route that can.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgelstm.cli.args import given_flags
from edgelstm.errors import UnsupportedError

_TFLITE_WAY_OUT = (
    "a .pt2 program cannot be cut at its nn.LSTM calls; from Python, "
    "edgelstm.torch_to_tflite(module, example_input) converts the nn.Module to one .tflite "
    "(needs pip install 'edgelstm[torch-tflite]'), or compile this file to .onnx"
)


def run(args: argparse.Namespace, out: Path) -> int:
    """Export the program whole to ONNX (its LSTMs rewritten); exit code 0."""
    from edgelstm._io import write_bytes_atomic
    from edgelstm.ir.options import CompileOptions, OnnxOptions
    from edgelstm.whole.torch_module import from_torch_module

    if out.suffix.lower() != ".onnx":
        raise UnsupportedError("compile", _TFLITE_WAY_OUT)
    given = given_flags(
        args,
        *("--batch", "--seq-len", "--time-major", "--streaming", "--calibration", "--optimize"),
        *("--lstm", "--batch-first", "--prefix", "--head"),
    )
    if given:
        raise UnsupportedError(
            "compile",
            f"{', '.join(given)} do(es) not apply to a torch.export program (its shapes and "
            "interface are kept as exported); drop them",
        )
    if args.quantize in ("int8", "int16x8"):
        from edgelstm.targets.onnx.emit import INT16X8_REASON, STATIC_INT8_REASON

        reason = STATIC_INT8_REASON if args.quantize == "int8" else INT16X8_REASON
        raise UnsupportedError("onnx", reason)
    options = CompileOptions(
        batch=None,
        quantize=args.quantize or "none",
        source=Path(args.source).name,
        onnx=OnnxOptions(
            dynamic_priority=getattr(args, "onnx_dynamic_priority", None) or "accuracy"
        ),
    )
    proto = from_torch_module(str(args.source), None, options)
    write_bytes_atomic(out, proto.SerializeToString())
    print(
        f"wrote {out} ({out.stat().st_size:,} bytes): whole torch.export program via torch.onnx "
        f"(dynamo), LSTMs rewritten by edgelstm, quantize={options.quantize}",
        file=sys.stdout,
    )
    return 0
