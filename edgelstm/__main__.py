"""``python -m edgelstm`` runs the CLI."""

import sys

from edgelstm.cli.main import main

sys.exit(main())
