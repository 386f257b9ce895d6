"""Compile for TFLite Micro and prove the file runs there: loadability, arena, budget.

:func:`compile_tflm` builds with :func:`edgelstm.targets.tflite.micro.to_tflm`, checks the
bytes against TFLM's op list and kernel limits (:func:`edgelstm.inspect.tflm.tflm_blockers`)
and measures the smallest arena on TFLM itself (:func:`edgelstm.runtime.tflm.min_arena`).
A file that would not load is never returned (so never written). The unfused lowering's
gate math is all-integer (int16, :mod:`edgelstm.targets.tflite.unfused.icell`) by default,
chosen by measurement on TFLM over the 46 unfused cells of the feature matrix: as accurate
as the float32 gate math or better on 40, worse by more than 2 output LSB on one (2.4 LSB),
median error 0.0064 vs 0.0109, about half the mean error for every feature, and within
1.31x of the fused int8 kernel on LiteRT where that runs (float32 gates: up to 39x, with
layer norm).
float32 gates remain for non-tanh cells and as the ``--max-arena`` fallback. With
``max_arena``, a file whose arena does not fit is refused with the measured numbers; for the
unfused lowering float32 gates (a smaller arena on tiny layer-norm cells) are tried next and,
when they fit, taken with their accuracy on TFLM stated next to the default's. The unrolled
schedule is not tried (it was before): TFLM keeps per-op data for every unrolled step, so
its arena is ~3x the WHILE loop's (measured 33.3 vs 11.6 KB at T=6); the API still builds
it on request (``CompileOptions(unfused=UnfusedOptions("unrolled"))``).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelstm.errors import InputDataError, UnsupportedError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.tflite.micro import (
    TARGET,
    gate_math,
    lowering_of,
    micro_options,
    to_tflm,
)

_UNITS = {"": 1, "B": 1, "KB": 1024, "K": 1024, "MB": 1 << 20, "M": 1 << 20}


def parse_bytes(text: str) -> int:
    """ "64KB", "65536", "1.5MB" -> bytes (KB = 1024 B)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).upper() if m else ""
    if m is None or unit not in _UNITS or float(m.group(1)) <= 0:
        raise InputDataError(
            f"--max-arena {text!r}: expected a positive size like 65536, 64KB or 1.5MB "
            "(B, KB, MB; 1 KB = 1024 B)"
        )
    return int(float(m.group(1)) * _UNITS[unit])


@dataclass
class MicroBuild:
    """A file TFLM loads: its bytes, the arena it needs, the lowering and any note."""

    data: bytes
    arena: int
    lowering: str
    note: str = ""
    gates: str = ""
    """The unfused lowering's gate math ("int16" or "float32"); "" for the fused op."""

    def summary(self) -> str:
        """The line ``compile --target tflm`` prints."""
        gates = f" ({self.gates} gate math)" if self.gates else ""
        text = (
            f"TFLite Micro: {self.lowering} lowering{gates}, arena {self.arena:,} B "
            f"({self.arena / 1024:.1f} KB RAM), flash ~{len(self.data):,} B (file size)"
        )
        return text + (f"; {self.note}" if self.note else "")


def _measure(data: bytes, tmp: Path, name: str) -> tuple[Path, int]:
    """Write ``data`` to a scratch file, refuse it unless TFLM can run it, measure its arena."""
    from edgelstm.inspect import inspect_model
    from edgelstm.inspect.tflm import tflm_blockers
    from edgelstm.runtime.tflm import min_arena

    path = tmp / f"{name}.tflite"
    path.write_bytes(data)
    reasons = tflm_blockers(inspect_model(path))
    if reasons:  # a bug of ours, never a file for the user
        raise UnsupportedError(TARGET, "the built file would not load: " + "; ".join(reasons))
    return path, min_arena(path)


def tflm_error(path: Path, model: LSTMModel, xs: np.ndarray) -> float:
    """Max abs error of ``path`` on TFLM vs the float64 reference, over sequences ``xs``
    ([N, T, I], run one batch-sized group at a time; the first output)."""
    from edgelstm.reference import reference_model
    from edgelstm.runtime.select import open_runner

    worst = 0.0
    with open_runner(path, "tflm") as runner:
        batch = int(runner.info.inputs[0].shape[1 if model.time_major else 0])
        for start in range(0, len(xs) - batch + 1, batch):
            x = xs[start : start + batch].astype(np.float32)
            x = np.swapaxes(x, 0, 1) if model.time_major else x
            got = runner.run(x)[0]
            want = reference_model(model, x).output
            worst = max(worst, float(np.max(np.abs(got - want))))
    return worst


def compile_tflm(
    model: LSTMModel, options: CompileOptions, max_arena: int | None = None
) -> MicroBuild:
    """Build ``model`` for TFLM (refusing what cannot run or fit; see the module docstring)."""
    options = micro_options(options)
    first = lowering_of(model, options)
    variants: list[tuple[CompileOptions, str]] = [(options, "")]
    if first.startswith("unfused") and options.quantize != "int16x8":
        default = gate_math(model)
        variants = [(options, g) for g in [default] + [g for g in ("float32",) if g != default]]
    measured: list[tuple[str, Path, int]] = []
    with tempfile.TemporaryDirectory(prefix="edgelstm-tflm-") as tmp:
        for k, (opts, gates) in enumerate(variants):
            name = lowering_of(model, opts)
            data = to_tflm(model, opts, gates=gates or None)
            path, arena = _measure(data, Path(tmp), f"v{k}")
            measured.append((name + (f" ({gates} gates)" if gates else ""), path, arena))
            if max_arena is None or arena <= max_arena:
                note = _cost(model, options, measured)
                return MicroBuild(data, arena, name, note, gates)
        tried = ", ".join(f"{n} needs {a:,} B" for n, _, a in measured)
        raise UnsupportedError(
            TARGET,
            f"--max-arena {max_arena:,} B is too small: {tried} of TFLite Micro arena; "
            "raise --max-arena, or shrink the model (fewer units, shorter --seq-len, batch 1)",
        )


def _cost(model: LSTMModel, options: CompileOptions, measured: list) -> str:
    """When a later variant was taken for the budget: what it cost, measured on TFLM."""
    if len(measured) < 2:
        return ""
    from edgelstm.targets.tflite.unfused.ranges import calibration_data

    xs = calibration_data(model, options)
    (n0, p0, a0), (n1, p1, _) = measured[0], measured[-1]
    e0, e1 = tflm_error(p0, model, xs), tflm_error(p1, model, xs)
    return (
        f"{n0} needs {a0:,} B (over --max-arena): took {n1}; max error vs the float64 "
        f"reference on the calibration data {e1:.2e} ({n0}: {e0:.2e})"
    )
