"""``import edgelstm`` and the CLI's start-up must not import TensorFlow, Keras or PyTorch."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "tf_keras", "torch")

CHECK = """
import sys
{body}
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))
print('HEAVY=' + ','.join(heavy))
"""


@pytest.mark.parametrize(
    "body",
    [
        "import edgelstm",
        "import edgelstm.cli.main as c\ntry:\n    c.main(['--help'])\nexcept SystemExit:\n    pass",
    ],
)
def test_no_heavy_framework_on_startup(body):
    code = CHECK.format(body=body, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    marker = [line for line in out.splitlines() if line.startswith("HEAVY=")]
    assert marker == ["HEAVY="], f"imported on start-up: {marker}"
