"""How exact is a compiled model? Run it and the float64 reference on the same inputs.

The reference is :func:`edgelstm.reference.reference_model` of the *source* weights — the
file given as ``source``, else the source named in the model's provenance (when it is found
and its weights digest matches), else the weights read back from the model itself. Only the
first two count weight quantization: a quantized model read back gives dequantized weights,
so its error then shows only the kernel's arithmetic; the result says which one was used.
When the source is a framework file (.keras/.h5, .pt, .onnx, .tflite), that framework runs
too, so "model vs reference" can be read next to "framework vs reference".

Errors are reported as max abs, RMSE, cosine similarity, error per time step (recurrent
errors grow with t, a single number hides that) and, for a quantized output, in output LSB
(``max_abs / output_scale``: 1 LSB is the best an int8 output can do).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import EdgeLSTMError, InputDataError, UnsupportedError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.weights import LSTMWeights
from edgelstm.measure.data import load_data
from edgelstm.reference import reference_model
from edgelstm.runtime.feeding import run_model

DEFAULT_SEQUENCES = 8
DEFAULT_SEQ_LEN = 32
FRAMEWORK_SUFFIXES = (".keras", ".h5", ".pt", ".pth", ".onnx", ".tflite")


@dataclass
class ErrorStats:
    """Differences between an output and the reference (both [N, T, F] or [N, F])."""

    max_abs: float
    rmse: float
    mean_abs: float
    cosine: float
    per_step_max_abs: list[float] = field(default_factory=list)
    per_step_rmse: list[float] = field(default_factory=list)

    @property
    def growth(self) -> float | None:
        """Mean error of the last quarter of steps over the first quarter's (None if < 4)."""
        steps = self.per_step_max_abs
        if len(steps) < 4:
            return None
        q = len(steps) // 4
        first, last = float(np.mean(steps[:q])), float(np.mean(steps[-q:]))
        return last / first if first > 0 else (1.0 if last == 0 else float("inf"))


@dataclass
class VerifyResult:
    """What :func:`verify` measured (``passed`` is None without a tolerance)."""

    model: str
    backend: str
    quantization: str
    reference: str
    input_shape: list[int]
    output_shape: list[int]
    error: ErrorStats
    output_scale: float | None = None
    framework: str | None = None
    framework_error: ErrorStats | None = None
    tolerance: float | None = None
    notes: list[str] = field(default_factory=list)
    layout: str = ""
    """How the input data was read, e.g. "batch-major [N, T, I]: 8 sequences of 29 steps"."""

    @property
    def max_abs(self) -> float:
        return self.error.max_abs

    @property
    def rmse(self) -> float:
        return self.error.rmse

    @property
    def cosine(self) -> float:
        return self.error.cosine

    @property
    def max_lsb(self) -> float | None:
        """Max error in output LSB (quantized output only)."""
        return self.error.max_abs / self.output_scale if self.output_scale else None

    @property
    def passed(self) -> bool | None:
        return None if self.tolerance is None else self.error.max_abs <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(max_lsb=self.max_lsb, passed=self.passed, growth=self.error.growth)
        return data


def error_stats(actual: np.ndarray, expected: np.ndarray) -> ErrorStats:
    """Compare ``actual`` to ``expected``; per-step lists when the arrays are [N, T, F]."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise UnsupportedError(
            "comparison",
            f"output shape {list(a.shape)} differs from the reference's {list(e.shape)}",
        )
    d = a - e
    na, ne = np.linalg.norm(a), np.linalg.norm(e)
    cosine = float(a.ravel() @ e.ravel() / (na * ne)) if na and ne else float(na == ne)
    stats = ErrorStats(
        max_abs=float(np.max(np.abs(d))) if d.size else 0.0,
        rmse=float(np.sqrt(np.mean(d**2))) if d.size else 0.0,
        mean_abs=float(np.mean(np.abs(d))) if d.size else 0.0,
        cosine=cosine,
    )
    if d.ndim == 3:
        stats.per_step_max_abs = np.abs(d).max(axis=(0, 2)).tolist()
        stats.per_step_rmse = np.sqrt((d**2).mean(axis=(0, 2))).tolist()
    return stats


def random_inputs(
    runner: Any, n: int | None = None, seq_len: int | None = None, seed: int = 0
) -> np.ndarray:
    """Seeded N(0, 1) sequences [N, T, I] of the model's shape (clipped to a quantized range).

    Clipping to what an int8 input can represent keeps saturation out of the measurement:
    the error then is the model's, not the test data's.
    """
    shape = runner.input_shape
    t_axis, b_axis = (0, 1) if runner.info.time_major else (1, 0)
    batch = shape[b_axis] if shape[b_axis] > 0 else 1
    steps = shape[t_axis] if shape[t_axis] > 0 else (seq_len or DEFAULT_SEQ_LEN)
    n = n or max(batch, DEFAULT_SEQUENCES)
    x = np.random.default_rng(seed).standard_normal((n, steps, shape[-1])).astype(np.float32)
    q = runner.input.quantization
    if q and np.dtype(runner.input.dtype).kind in "iu":
        info = np.iinfo(runner.input.dtype)
        scale, zp = q["scale"][0], q["zero_point"][0]
        x = np.clip(x, (info.min - zp) * scale, (info.max - zp) * scale)
    return x


def _layout(x: np.ndarray, time_major: bool) -> str:
    n, t, _ = x.shape
    given = "time-major [T, B, I] (--time-major)" if time_major else "batch-major [N, T, I]"
    return f"{given}: {n} sequence{'s' * (n != 1)} of {t} step{'s' * (t != 1)}"


def read_data(
    data: Any, runner: Any, n_input: int, time_major: bool = False
) -> tuple[np.ndarray, str]:
    """``data`` (array or .npy/.npz path) as batch-major [N, T, I] plus how it was read.

    Checked against the model's fixed dimensions (I, and T when fixed), so that [T, B, I]
    data cannot pass silently as T sequences of B steps.
    """
    x = load_data(data) if isinstance(data, str | os.PathLike) else np.asarray(data, np.float32)
    raw = list(x.shape)
    if x.ndim == 2:
        x = x[None]  # one [T, I] sequence, whatever the layout
    elif x.ndim == 3 and time_major:
        x = x.transpose(1, 0, 2)
    read_as = "[T, B, I] (--time-major)" if time_major else "[N, T, I]"
    flag = "drop --time-major" if time_major else "pass --time-major (time_major=True)"
    if x.ndim != 3 or x.shape[-1] != n_input:
        shape_i = f"[T, B, {n_input}] (--time-major)" if time_major else f"[N, T, {n_input}]"
        raise InputDataError(f"input data: expected {shape_i}, found {raw}")
    shape = runner.input_shape
    steps = shape[0 if runner.info.time_major else 1]
    if steps > 0 and x.shape[1] != steps:
        raise InputDataError(
            f"input data: shape {raw} read as {read_as} has T = {x.shape[1]}, but the model "
            f"takes T = {steps} (input {shape}); if the data's layout is the other one, {flag}"
        )
    return np.ascontiguousarray(x, dtype=np.float32), _layout(x, time_major)


def _load_model_source(path: Path) -> LSTMModel:
    from edgelstm.importers.load import load_source

    return load_source(path)


def _digests(model: LSTMModel) -> list[str]:
    return [w.digest() for layer in model.layers for w in layer.directions]


def resolve_source(
    model_path: Path, info: Any, source: Any = None
) -> tuple[LSTMModel, str, Path | None, list[str]]:
    """(source model, how it was found, source file to run as a framework, notes)."""
    notes: list[str] = []
    if isinstance(source, (LSTMModel, LSTMWeights)):
        return LSTMModel.of(source), "given LSTMModel", None, notes
    if source is not None:
        p = Path(source)
        return _load_model_source(p), f"{p.name} (given)", p, notes
    prov = info.provenance
    name = prov.get("source")
    if isinstance(name, str) and name not in ("", "api"):
        places = (model_path.parent / name, Path(name), model_path.parent / Path(name).name)
        found = [c for c in places if c.is_file() and c.resolve() != model_path.resolve()]
        if not found:
            notes.append(
                f"provenance source {name!r} not found next to the model or in the current "
                "directory: the reference is the model's own weights; pass --against SOURCE "
                "to compare with the source"
            )
        else:
            model = _provenance_model(found[0], prov.get("digests"), notes, prov.get("nodes"))
            if model is not None:
                return model, f"{found[0].name} (from provenance, digest match)", None, notes
    try:
        model = _load_model_source(model_path)
    except (EdgeLSTMError, ImportError) as exc:
        raise UnsupportedError(
            "reference", f"cannot recover the source from {model_path.name} ({exc}); pass --against"
        ) from None
    if info.quantization != "float":
        notes.append(
            "reference uses the model's own dequantized weights: weight quantization error "
            "is not counted (pass --against SOURCE to count it)"
        )
    return model, f"{model_path.name}'s own weights (read back)", None, notes


def _provenance_model(
    path: Path, digests: Any, notes: list[str], nodes: Any = None
) -> LSTMModel | None:
    """The provenance source at ``path`` when it loads and holds the file's weights (an ONNX
    source: the LSTM node(s) the file was compiled from, as ``--lstm`` selected them)."""
    try:
        try:
            model = _load_model_source(path)
        except UnsupportedError:  # a whole graph: the file holds the --lstm node(s) alone
            if not (path.suffix.lower() == ".onnx" and nodes):
                raise
            from edgelstm.importers.load import load_source

            model = load_source(path, lstm=",".join(map(str, nodes)))
    except (EdgeLSTMError, ImportError) as exc:
        notes.append(f"provenance source {path} unreadable ({exc}): using the model's own weights")
        return None
    if _digests(model) != digests:
        notes.append(
            f"provenance source {path} has other weights (digest differs): using the model's "
            "own weights"
        )
        return None
    return model


def verify(
    model_path: str | os.PathLike[str],
    source: Any = None,
    data: Any = None,
    *,
    backend: str = "auto",
    threads: int = 1,
    tolerance: float | None = None,
    seed: int = 0,
    sequences: int | None = None,
    seq_len: int | None = None,
    run_framework: bool = True,
    probe: bool = True,
    time_major: bool = False,
) -> VerifyResult:
    """Measure ``model_path`` against the float64 reference of ``source``.

    ``source``: a source file, an LSTMModel/LSTMWeights, or None (recover it, see module
    doc). ``data``: [N, T, I] array or .npy/.npz path ([T, B, I] with ``time_major=True``),
    checked against the model's input width and fixed T; None = seeded random inputs of the
    model's shape. With ``run_framework`` a framework source file is run on the same data.
    ``probe``: run the file once in a child process first, so that a runtime crash is a
    ModelFileError (see :func:`edgelstm.runtime.select.open_runner`); False for files
    edgelstm has just written itself.
    """
    from edgelstm.runtime.select import open_runner

    path = Path(model_path)
    with open_runner(path, backend, threads, probe=probe) as runner:
        info = runner.info
        src_model, src_desc, src_file, notes = resolve_source(path, info, source)
        if data is None:
            x = random_inputs(runner, sequences, seq_len, seed)
            notes.append(f"random N(0,1) inputs, seed {seed}")
            layout = _layout(x, False)
        else:
            x, layout = read_data(data, runner, src_model.n_input, time_major)
            if not time_major and runner.input_shape[0 if runner.info.time_major else 1] < 0:
                notes.append(
                    "the model's T is dynamic, so the data's layout cannot be checked: "
                    "pass --time-major (time_major=True) if it is [T, B, I]"
                )
        y = run_model(runner, x)
        scale = runner.output_scale
        used_backend = runner.backend
    ref = reference_model(dataclasses.replace(src_model, time_major=False), x).output
    result = VerifyResult(
        model=str(path),
        backend=used_backend,
        quantization=info.quantization,
        reference=src_desc,
        input_shape=list(x.shape),
        layout=layout,
        output_shape=list(y.shape),
        error=error_stats(y, ref),
        output_scale=scale,
        tolerance=tolerance,
        notes=notes,
    )
    if run_framework and src_file is not None and src_file.suffix.lower() in FRAMEWORK_SUFFIXES:
        from edgelstm.measure.frameworks import run_framework as run_fw

        try:
            name, fy = run_fw(src_file, x, threads)
        except (EdgeLSTMError, ImportError) as exc:
            notes.append(f"framework run of {src_file.name} skipped: {exc}")
        else:
            result.framework = name
            try:
                result.framework_error = error_stats(fy, ref)
            except UnsupportedError as exc:
                notes.append(f"framework output not comparable: {exc.reason}")
    return result


def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def sample_steps(n: int, k: int = 8) -> list[int]:
    """Up to ``k`` step indices spread over 0..n-1 (always the first and the last)."""
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if n > k else list(range(n))


def format_result(r: VerifyResult) -> str:
    """The text ``edgelstm verify`` prints."""
    e = r.error
    lines = [
        f"{r.model}: {r.quantization} on {r.backend}, input {r.input_shape} -> {r.output_shape}",
        f"data: {r.layout}",
        f"reference: float64 of {r.reference}",
        f"  max abs {e.max_abs:.3e}  RMSE {e.rmse:.3e}  mean abs {e.mean_abs:.3e}  "
        f"cosine {e.cosine:.9f}",
    ]
    if r.output_scale:
        lines.append(
            f"  output LSB {r.output_scale:.4g}: max {r.max_lsb:.2f} LSB, "
            f"RMSE {e.rmse / r.output_scale:.2f} LSB"
        )
    if e.per_step_max_abs:
        steps = sample_steps(len(e.per_step_max_abs))
        lines.append("  error per time step (max abs):")
        lines.append("    t    " + " ".join(f"{t:>9d}" for t in steps))
        lines.append("    err  " + " ".join(f"{e.per_step_max_abs[t]:9.2e}" for t in steps))
        if e.growth is not None:
            lines.append(f"    growth (last quarter / first quarter): {e.growth:.2f}x")
    if r.framework_error is not None:
        f = r.framework_error
        lines.append(
            f"framework {r.framework} vs reference: max abs {f.max_abs:.3e}  "
            f"RMSE {f.rmse:.3e}  cosine {f.cosine:.9f}"
        )
    lines.extend(f"note: {n}" for n in r.notes)
    if r.tolerance is not None:
        verdict = "PASS" if r.passed else "FAIL"
        lines.append(f"{verdict}: max abs {e.max_abs:.3e} vs tolerance {_fmt(r.tolerance)}")
    return "\n".join(lines)
