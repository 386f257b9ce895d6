"""One module per CLI command, each with ``add_parser(subparsers)`` and ``run(args) -> int``.

Command modules must stay light at import (the CLI imports all of them to build ``--help``):
heavy work and imports happen inside ``run``.
"""

COMMANDS: tuple[str, ...] = ("demo", "compile", "verify", "bench", "inspect", "report")
"""Command module names, in the order ``--help`` lists them."""
