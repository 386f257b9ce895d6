"""The command line: :mod:`.main` parses and dispatches; one module per command.

Command modules stay light at import (``--help`` imports all of them): heavy work and
imports happen inside their ``run``.
"""
