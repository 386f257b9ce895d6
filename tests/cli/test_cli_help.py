"""Every subcommand's ``--help`` shows an example and explains every option (issue 14 §4)."""

from __future__ import annotations

import argparse
import shlex

import pytest

from edgelstm.cli.commands import COMMANDS
from edgelstm.cli.main import build_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_is_walked():
    assert sorted(_subparsers()) == sorted(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_examples_and_option_help(name):
    sub = _subparsers()[name]
    assert sub.formatter_class is argparse.RawDescriptionHelpFormatter, name
    assert sub.epilog and "examples:" in sub.epilog, f"{name}: no examples in --help"
    examples = [line.strip() for line in sub.epilog.splitlines() if line.startswith("  edgelstm ")]
    assert examples, f"{name}: the epilog holds no 'edgelstm ...' command line"
    assert all(line.split()[1] == name for line in examples), examples
    undocumented = [
        a.option_strings or a.dest
        for a in sub._actions
        if not isinstance(a, argparse._HelpAction) and not (a.help and a.help.strip())
    ]
    assert not undocumented, f"{name}: options without help: {undocumented}"
    text = sub.format_help()
    assert examples[0] in text  # RawDescription keeps the example lines as written


@pytest.mark.parametrize("name", COMMANDS)
def test_examples_parse(name):
    """Each example line is accepted by the parser as written (flags exist, types fit)."""
    parser = build_parser()
    for line in _subparsers()[name].epilog.splitlines():
        if line.startswith("  edgelstm "):
            args = parser.parse_args(shlex.split(line)[1:])
            assert args.command == name
