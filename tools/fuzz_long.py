#!/usr/bin/env python3
"""Run edgelstm's fuzz properties for a long time (the CI suite runs each one briefly).

The properties are the ones of ``tests/robustness/test_fuzz_compile.py``, ``test_fuzz_files.py``
and ``test_fuzz_onnx_intake.py`` (their ``PROPERTIES`` lists): random specs/weights/options
compiled and run on onnxruntime and LiteRT against the float64 reference; corrupted /
adversarially edited .npz, .onnx and .tflite files given to the readers, ``inspect`` and
``edgelstm compile``; mutated exporter-style ONNX graphs given to the LSTM intake
(``find_lstms``, ``from_onnx(lstm=)``, ``inspect``). Here they run with fresh random seeds,
round-robin, until the time budget is spent. Failures are shrunk and
printed with a ``@reproduce_failure`` blob; the exit code is 1 if any property failed.

    .venv/bin/python tools/fuzz_long.py --budget 3600            # an hour, every property
    .venv/bin/python tools/fuzz_long.py --budget 600 --only onnx_float tflite_float
    .venv/bin/python tools/fuzz_long.py --list

Properties with an open bug in another module (``known_bug``) are skipped unless
``--include-known`` is given.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
TESTS = Path(__file__).resolve().parents[1] / "tests"
SUITES = ("test_fuzz_compile", "test_fuzz_files", "test_fuzz_onnx_intake")  # tests/robustness/


def _properties() -> list[tuple[Any, Any]]:
    import importlib

    sys.path[:0] = [str(TESTS), str(TESTS / "robustness")]  # _fuzz and the suites
    modules = [importlib.import_module(name) for name in SUITES]
    return [(m, p) for m in modules for p in m.PROPERTIES]


def _counted(check: Any, counter: collections.Counter, name: str) -> Any:
    def counted(case: Any) -> None:
        counter[name] += 1
        check(case)

    return counted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds in total")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these properties only")
    parser.add_argument("--examples", type=int, default=1000, help="examples per round")
    parser.add_argument("--include-known", action="store_true", help="run known-bug ones too")
    parser.add_argument("--list", action="store_true", help="list the properties and exit")
    args = parser.parse_args(argv)

    props = _properties()
    if args.list:
        for _, p in props:
            note = f"  [known bug: {p.known_bug}]" if p.known_bug else ""
            print(f"{p.name:24s} CI examples {p.ci_examples}{note}")
        return 0
    if args.only:
        unknown = set(args.only) - {p.name for _, p in props}
        if unknown:
            parser.error(f"unknown properties {sorted(unknown)}")
        props = [(m, p) for m, p in props if p.name in args.only]
    if not args.include_known:
        props = [(m, p) for m, p in props if not p.known_bug]

    from hypothesis import settings

    counts: collections.Counter = collections.Counter()
    failed: dict[str, str] = {}
    deadline = time.monotonic() + args.budget
    rounds = 0
    while props and time.monotonic() < deadline:
        rounds += 1
        for module, p in list(props):
            if time.monotonic() >= deadline:
                break
            prop = type(p)(p.name, p.strategy, _counted(p.check, counts, p.name), p.ci_examples)
            start = time.monotonic()
            try:
                module.run_property(
                    prop,
                    max_examples=args.examples,
                    derandomize=False,
                    deadline=None,
                    database=None,
                    phases=settings.default.phases,
                )
            except Exception:  # noqa: BLE001 - report every falsified property
                failed[p.name] = traceback.format_exc()
                props.remove((module, p))
                print(f"FAIL {p.name}\n{failed[p.name]}", flush=True)
            else:
                took = time.monotonic() - start
                print(
                    f"ok   {p.name:24s} round {rounds}: {counts[p.name]:>8,} cases ({took:.0f} s)"
                )
    print(f"\n{sum(counts.values()):,} cases in {rounds} round(s); {len(failed)} failing:")
    for name in sorted(counts):
        print(f"  {name:24s} {counts[name]:>8,}  {'FAIL' if name in failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
