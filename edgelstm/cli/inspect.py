"""``edgelstm inspect MODEL [--json]``: ops, tensor roles, dtypes, quantization, provenance.

Reads the file with the flatbuffer schema / onnx protobuf only, so it starts in well under a
second and never imports TensorFlow or PyTorch.
"""

from __future__ import annotations

import argparse

HELP = "show the ops, tensor roles, shapes, dtypes, quantization and metadata of a model"
EPILOG = """examples:
  edgelstm inspect model.tflite
  edgelstm inspect model.onnx --json
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "inspect",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="a .tflite or .onnx file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def _tflm_arena(info):
    """The arena measured on TFLite Micro (~1 s) when it is installed and the file can load
    there, or the error TFLM raised; None otherwise (inspect prints the estimate)."""
    import importlib.util

    from edgelstm.inspect.tflm import tflm_blockers

    if info.format != "tflite" or tflm_blockers(info):
        return None
    if importlib.util.find_spec("tflite_micro") is None:
        return None
    from edgelstm.runtime.tflm import min_arena

    try:
        return min_arena(info.path)
    except Exception as exc:  # noqa: BLE001 - inspect reports TFLM's refusal, never fails on it
        return exc


def run(args: argparse.Namespace) -> int:
    import json

    from edgelstm.inspect import format_info, inspect_model

    info = inspect_model(args.model)
    if args.json:
        text = json.dumps(info.to_dict(), indent=2, default=str)
    else:
        text = format_info(info, _tflm_arena(info))
    try:
        print(text)
    except BrokenPipeError:  # `edgelstm inspect m.tflite | head` closed the pipe early
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
