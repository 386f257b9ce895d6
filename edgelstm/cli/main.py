"""Command line: a thin layer over the Python API.

Each command lives in its own module ``edgelstm.cli.<name>`` (``add_parser``/``run``),
listed in :data:`edgelstm.cli.commands.COMMANDS`. Every
:class:`~edgelstm.errors.EdgeLSTMError` becomes one line on stderr and exit code 2
(``--debug`` shows the traceback). Heavy modules are imported inside the commands. Long work
draws transient progress bars on stderr when it is a terminal (:func:`edgelstm._io.progress`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from edgelstm._io import enable_progress
from edgelstm._version import __version__
from edgelstm.cli.commands import COMMANDS
from edgelstm.errors import EdgeLSTMError

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgelstm",
        description="Compile LSTM cells to fused TFLite / ONNX ops, quantize, verify, bench.",
    )
    parser.add_argument("--version", action="version", version=f"edgelstm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"edgelstm.cli.{name}")
        module.add_parser(sub).set_defaults(func=module.run)
    return parser


def one_line(text: str) -> str:
    """``text`` with line breaks folded: an error is always exactly one line on stderr."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or "(no detail)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from edgelstm.importers import quiet as _quiet

    previous = _quiet.enable(not args.debug)  # TF's start-up lines are not ours; --debug shows
    bars = enable_progress(True)  # progress bars on stderr, drawn only when it is a terminal
    try:
        return _run(args)
    finally:
        enable_progress(bars)
        _quiet.enable(previous)


def _run(args: argparse.Namespace) -> int:
    """Run the chosen command; expected errors become one line on stderr."""
    try:
        return int(args.func(args) or 0)
    except EdgeLSTMError as exc:
        if args.debug:
            raise
        print(f"edgelstm {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        if args.debug:
            raise
        print(f"edgelstm {args.command}: error: out of memory", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("edgelstm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `edgelstm inspect m.tflite | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
