"""``edgelstm compile model.onnx -o out.onnx``: rewrite an exporter's graph whole.

Every compilable LSTM node becomes edgelstm's exact lowering; everything else (graph inputs
and outputs, other ops, If/Loop/Scan bodies, state inputs) is kept
(:func:`edgelstm.targets.onnx.rewrite.rewrite_onnx`). With ``--quantize dynamic``,
``--calibration FEEDS`` gives the graph's own inputs (:mod:`edgelstm.measure.feeds`) to
measure the int8 weight scheme on; without it, seeded N(0, 1) inputs (said on stderr).
Not handled here (None: the LSTM-only path compiles the source): ``--lstm NAME``,
``.tflite`` output, and edgelstm's own files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgelstm.cli.args import given_flags
from edgelstm.errors import UnsupportedError

if TYPE_CHECKING:
    import onnx

_WHY = "the rewritten graph keeps the source's own shapes and interface"


def run(args: argparse.Namespace, out: Path) -> int | None:
    """Rewrite ``args.source`` whole into ``out``; None when this is not a whole-graph job."""
    if args.lstm is not None or out.suffix.lower() != ".onnx":
        return None
    from edgelstm.importers.onnx_graph import load_model
    from edgelstm.targets.onnx.reader import is_edgelstm_onnx

    model, _ = load_model(args.source)
    if is_edgelstm_onnx(model):
        return None
    calibration = getattr(args, "calibration", None)
    _refuse_flags(args, calibration)
    from edgelstm._io import write_bytes_atomic
    from edgelstm.ir.options import CompileOptions, OnnxOptions
    from edgelstm.targets.onnx.rewrite import rewrite_onnx

    options = CompileOptions(
        quantize=args.quantize,
        source=Path(args.source).name,
        onnx=OnnxOptions(
            dynamic_priority=getattr(args, "onnx_dynamic_priority", None) or "accuracy"
        ),
    )
    feeds = None
    if calibration is not None:
        from edgelstm.measure.feeds import load_feeds

        feeds = load_feeds(calibration, model)
    proto, report = rewrite_onnx(model, options, feeds=feeds)
    if not report.applied:
        reasons = "; ".join(f"{r.where}: {r.detail}" for r in report.refused)
        raise UnsupportedError(
            "onnx",
            f"no LSTM node of {Path(args.source).name} can be rewritten ({reasons}); "
            "nothing written",
        )
    data = proto.SerializeToString()
    write_bytes_atomic(out, data)
    quant = ", quantize=dynamic" if args.quantize == "dynamic" else ""
    print(f"wrote {out} ({len(data):,} bytes): {report.summary()}{quant}")
    for r in report.refused:
        print(f"note: LSTM {r.where} kept unchanged: {r.detail}", file=sys.stderr)
    if args.quantize == "dynamic":
        print(_scheme_note(proto, feeds is not None), file=sys.stderr)
    return 0


def _scheme_note(proto: onnx.ModelProto, calibrated: bool) -> str:
    """Which weight scheme was chosen and what it was measured on (with the way to measure
    it on the user's data when that was seeded inputs)."""
    import json

    from edgelstm.targets.onnx.scheme_choice import SCHEME_KEY

    props = {p.key: p.value for p in proto.metadata_props}
    choice = json.loads(props.get(SCHEME_KEY, "{}"))
    chosen, on = choice.get("chosen"), choice.get("measured_on")
    text = f"note: int8 weight scheme {chosen}, measured on {on}"
    if calibrated:
        return text
    return (
        f"{text}; --calibration FEEDS.npz (representative inputs: one array per graph input, "
        "named as the input, [N, *input shape]) measures it on your data"
    )


def _refuse_flags(args: argparse.Namespace, calibration: str | None) -> None:
    """Flags that do not apply to a whole-graph rewrite: refused with the reason."""
    given = given_flags(
        args, "--batch", "--seq-len", "--time-major", "--batch-first", "--prefix", "--head"
    )
    if given:
        raise UnsupportedError(
            "compile",
            f"{', '.join(given)} do(es) not apply to a whole ONNX graph ({_WHY}); drop "
            f"{'them' if len(given) > 1 else 'it'}, or compile one LSTM with --lstm NAME",
        )
    if args.streaming:
        raise UnsupportedError(
            "compile",
            f"--streaming does not apply to a whole ONNX graph ({_WHY}: LSTM states that are "
            "graph inputs stay graph inputs); drop it, or compile one LSTM as a streaming file "
            "with --lstm NAME --streaming",
        )
    if args.quantize == "int8":
        from edgelstm.targets.onnx.emit import STATIC_INT8_REASON

        raise UnsupportedError("onnx", STATIC_INT8_REASON)
    if args.quantize == "int16x8":
        from edgelstm.targets.onnx.emit import INT16X8_REASON

        raise UnsupportedError("onnx", INT16X8_REASON)
    if calibration is not None and args.quantize != "dynamic":
        raise UnsupportedError(
            "compile",
            "--calibration of a whole ONNX graph measures the dynamic int8 weight scheme on "
            "its inputs: add --quantize dynamic, or drop it",
        )
    if args.optimize is not None:
        raise UnsupportedError(
            "compile",
            "--optimize searches variants of one LSTM stack, not a whole graph; drop it, or "
            "compile one LSTM with --lstm NAME --optimize latency",
        )
