"""Where the tests find the repository's files (tests live in sub-folders of tests/)."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
MODELS = REPO / "models"
TEST_DATA = TESTS / "data"
