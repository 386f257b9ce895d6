"""``edgelstm demo``: the whole pipeline on real data, in well under two minutes.

A trained Japanese Vowels speaker classifier (bundled, see ``models/README.md``) is compiled
to five deployable variants -- TFLite float32, hybrid (dynamic-range int8 weights), full int8
(calibrated on the training split, float I/O) and ONNX float32, dynamic int8 -- and each one
is run on its real interpreter (LiteRT for .tflite, onnxruntime for .onnx) to measure:

* **test accuracy** over the official 370-utterance test split, exactly as the float64
  reference's recorded accuracy was measured: every utterance zero-padded to 29 frames, no
  lengths (the model was trained on, and is deployed with, padded sequences);
* **max abs error** of its softmax output vs the float64 reference, with :func:`edgelstm.verify`
  on the same test set;
* **latency** (p50 per sequence, batch 1, 29 steps) with :func:`edgelstm.bench`, all variants
  interleaved in one process so background load hits them alike;
* **file size**.

Each variant is one file with a dynamic batch dimension and 29 fixed steps: the accuracy run
feeds the 370 test sequences as one batch, the benchmark resizes it to batch 1 (timed the
same as a batch-1 file). Neither TensorFlow nor PyTorch is imported, nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import ModelFileError

SEQ_LEN = 29
DATA_FILE = "japanese_vowels.npz"
MODELS: dict[str, tuple[str, str]] = {
    "jv": ("japanese_vowels_lstm.npz", "peepholes + projection + cell clip"),
    "jv-cifg-ln": ("japanese_vowels_cifg_ln_lstm.npz", "CIFG + layer norm + cell clip"),
}
"""``--model`` choice -> (bundled file, features)."""


@dataclass(frozen=True)
class Variant:
    """One deployable file: ``name`` in the table, format, ``CompileOptions.quantize``."""

    name: str
    format: str
    quantize: str
    suffix: str

    def filename(self, prefix: str) -> str:
        return f"{prefix}_{self.suffix}.{self.format}"


VARIANTS: tuple[Variant, ...] = (
    Variant("TFLite float32", "tflite", "none", "float"),
    Variant("TFLite hybrid", "tflite", "dynamic", "hybrid"),
    Variant("TFLite int8", "tflite", "int8", "int8"),
    Variant("ONNX float32", "onnx", "none", "float"),
    Variant("ONNX dyn. int8", "onnx", "dynamic", "dynamic_int8"),
)


@dataclass
class VariantResult:
    """What the demo measured for one variant."""

    name: str
    path: str
    format: str
    quantization: str
    backend: str
    correct: int
    total: int
    max_abs_error: float
    p50_ms: float
    ratio: float
    size_bytes: int
    size_ratio: float
    """File size over the same format's float32 file."""
    peak_rss_mb: float | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.total


@dataclass
class DemoResult:
    """The whole demo: the reference's accuracy, one :class:`VariantResult` per variant."""

    model: str
    description: str
    source: str
    reference_correct: int
    total: int
    variants: list[VariantResult]
    threads: int
    runs: int
    warmup: int
    seconds: float
    versions: dict[str, str]
    out_dir: str
    report_html: str | None = None
    report_md: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def reference_accuracy(self) -> float:
        return self.reference_correct / self.total

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reference_accuracy"] = self.reference_accuracy
        for row, v in zip(data["variants"], self.variants, strict=True):
            row["accuracy"] = v.accuracy
        return data


def versions() -> dict[str, str]:
    """Versions of what produced the numbers."""
    from edgelstm._version import __version__

    out = {"edgelstm": __version__, "python": platform.python_version()}
    for dist in ("numpy", "ai-edge-litert", "onnxruntime", "onnx"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    out["machine"] = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    return out


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` (and parents); ModelFileError when that is impossible."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ModelFileError(f"{out}: --out-dir exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(
            f"{out}: cannot create the output directory ({exc.strerror or exc})"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ModelFileError(f"{out}: the output directory is not writable")
    return out


def _compile(model: Any, variant: Variant, path: Path, calibration: np.ndarray) -> None:
    from edgelstm.ir.options import CompileOptions

    options = CompileOptions(
        batch=None,  # dynamic: one file serves the batched accuracy run and batch-1 timing
        seq_len=SEQ_LEN,
        quantize=variant.quantize,  # type: ignore[arg-type]
        calibration=calibration if variant.quantize == "int8" else None,
        source=f"edgelstm demo ({path.stem})",
    )
    if variant.format == "tflite":
        from edgelstm.targets.tflite import save_tflite

        save_tflite(model, path, options)
    else:
        from edgelstm.targets.onnx import save_onnx

        save_onnx(model, path, options)


def _predict(path: Path, x: np.ndarray, threads: int) -> tuple[np.ndarray, str]:
    """Class probabilities of ``x`` [N, T, I] on the model's own interpreter, one batch."""
    from edgelstm.runtime.feeding import run_model
    from edgelstm.runtime.select import open_runner

    with open_runner(path, "auto", threads, probe=False) as runner:
        return run_model(runner, x), runner.backend


def run_demo(
    out_dir: str | os.PathLike[str] = "edgelstm-demo",
    *,
    model: str = "jv",
    runs: int = 200,
    warmup: int | None = None,
    threads: int = 1,
    report: bool = True,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Compile, verify, score, bench (and report) the bundled classifier; see module doc."""
    from edgelstm.errors import InputDataError

    say = log or (lambda _msg: None)
    if model not in MODELS:
        raise InputDataError(f"--model: expected one of {', '.join(MODELS)}, found {model!r}")
    if runs < 1 or threads < 1:
        raise InputDataError("runs and threads must be >= 1")
    warmup = min(20, runs) if warmup is None else warmup
    start = time.perf_counter()
    out = prepare_out_dir(out_dir)
    src_path, src, description, split = _load_bundled(model, say)
    _, x_test, y_test = split
    ref_correct = _reference_correct(src, x_test, y_test, say)

    prefix = model.replace("-", "_")
    paths = [out / v.filename(prefix) for v in VARIANTS]
    checks = _compile_and_score(src, src_path, paths, split, threads, say)
    say(f"bench {len(paths)} variants interleaved: {runs} runs each, batch 1, {SEQ_LEN} steps")
    timings = _bench(paths, runs, warmup, threads)
    result = DemoResult(
        model=model,
        description=description,
        source=src_path.name,
        reference_correct=ref_correct,
        total=len(y_test),
        variants=_variant_rows(paths, checks, timings, len(y_test)),
        threads=threads,
        runs=runs,
        warmup=warmup,
        seconds=0.0,
        versions=versions(),
        out_dir=str(out),
    )
    result.notes = _notes(result)
    if report:
        say("write the report")
        html, md = _write_report(result, [c[0] for c in checks], timings, out, prefix)
        result.report_html, result.report_md = str(html), str(md)
    result.seconds = time.perf_counter() - start
    from edgelstm._io import write_bytes_atomic

    write_bytes_atomic(out / f"{prefix}_demo.json", json.dumps(result.to_dict(), indent=2).encode())
    return result


_Split = tuple[np.ndarray, np.ndarray, np.ndarray]
DEMO_MAX_ERROR = 1e-2
"""The report's verdict budget: max abs error of the class probabilities (0..1)."""
"""(x_train, x_test, y_test) of the bundled data set."""


def _load_bundled(model: str, say: Callable[[str], None]) -> tuple[Path, Any, str, _Split]:
    """(source path, source model, its description, the data split) of ``--model``."""
    from edgelstm.demo.data import bundled_path
    from edgelstm.importers.npz import from_npz

    model_file, features = MODELS[model]
    src_path = bundled_path(model_file)
    with np.load(bundled_path(DATA_FILE), allow_pickle=False) as data:
        x_train = data["x_train"].astype(np.float32)
        x_test = data["x_test"].astype(np.float32)
        y_test = data["y_test"].astype(np.int64)
    src = from_npz(src_path)
    description = f"{src.describe().removeprefix('[0] ')} ({features})"
    say(f"model: {src_path.name}: {description}")
    return src_path, src, description, (x_train, x_test, y_test)


def _reference_correct(
    src: Any, x_test: np.ndarray, y_test: np.ndarray, say: Callable[[str], None]
) -> int:
    """Test utterances the float64 reference classifies correctly."""
    from edgelstm.reference import reference_model

    ref_pred = reference_model(src, x_test).output.argmax(-1)
    ref_correct = int((ref_pred == y_test).sum())
    say(f"reference (float64): {ref_correct}/{len(y_test)} correct on the test split")
    return ref_correct


def _compile_and_score(
    src: Any,
    src_path: Path,
    paths: list[Path],
    split: _Split,
    threads: int,
    say: Callable[[str], None],
) -> list[tuple[Any, int, str]]:
    """Compile every variant, then (verify result, correct count, backend) of each."""
    from edgelstm._io import progress
    from edgelstm.measure.verify import verify

    x_train, x_test, y_test = split
    checks = []
    with progress(2 * len(paths), "compiling + verifying variants") as advance:
        for v, p in zip(VARIANTS, paths, strict=True):
            say(f"compile {v.name} -> {p.name}")
            _compile(src, v, p, x_train)
            advance()
        for v, p in zip(VARIANTS, paths, strict=True):
            say(f"verify + score {v.name} on the {len(y_test)} test utterances")
            vr = verify(p, str(src_path), x_test, threads=threads, run_framework=False, probe=False)
            probs, backend = _predict(p, x_test, threads)
            checks.append((vr, int((probs.argmax(-1) == y_test).sum()), backend))
            advance()
    return checks


def _bench(paths: list[Path], runs: int, warmup: int, threads: int) -> list[Any]:
    """Every variant timed interleaved, batch 1, with memory."""
    from edgelstm.measure.bench import bench

    return bench(
        paths,
        threads=threads,
        runs=runs,
        warmup=warmup,
        batch=1,
        seq_len=SEQ_LEN,
        memory=True,
        probe=False,  # the variants compiled just above
    )


def _variant_rows(
    paths: list[Path], checks: list[tuple[Any, int, str]], timings: list[Any], total: int
) -> list[VariantResult]:
    float_size = {
        v.format: t.size_bytes
        for v, t in zip(VARIANTS, timings, strict=True)
        if v.quantize == "none"
    }
    return [
        VariantResult(
            name=v.name,
            path=str(p),
            format=v.format,
            quantization=vr.quantization,
            backend=backend,
            correct=correct,
            total=total,
            max_abs_error=vr.max_abs,
            p50_ms=t.p50_ms,
            ratio=t.ratio,
            size_bytes=t.size_bytes,
            size_ratio=t.size_bytes / float_size[v.format],
            peak_rss_mb=t.peak_rss_mb,
        )
        for v, p, (vr, correct, backend), t in zip(VARIANTS, paths, checks, timings, strict=True)
    ]


def _notes(result: DemoResult) -> list[str]:
    notes = [
        f"Data: UCI Japanese Vowels, official test split ({result.total} utterances, 9 "
        "speakers), zero-padded to 29 frames and standardized as bundled; accuracy is "
        "measured on the padded sequences without lengths, as the reference's was.",
        "Full int8 (TFLite) is calibrated on the 270 training utterances and keeps float "
        "input/output; ONNX dynamic int8 quantizes weights and each activation at run time.",
        "Max abs error: the variant's softmax output vs the float64 reference of the source "
        "weights (probabilities, range 0..1), over the whole test set.",
    ]
    ref = result.reference_accuracy
    for v in result.variants:
        if abs(v.accuracy - ref) > 0.01:
            notes.append(
                f"{v.name}: accuracy {v.accuracy:.2%} differs from the reference's "
                f"{ref:.2%} by more than 1 point"
            )
    return notes


def _accuracy_figure(result: DemoResult) -> bytes:
    from edgelstm.measure.report.plots import COLORS, _figure, _png

    fig, ax = _figure(7.5, 0.8 + 0.45 * (len(result.variants) + 1))
    names = ["reference (float64)"] + [v.name for v in result.variants]
    acc = [100 * result.reference_accuracy] + [100 * v.accuracy for v in result.variants]
    bars = ax.barh(names, acc, color=["#7f7f7f"] + list(COLORS[: len(result.variants)]))
    ax.bar_label(bars, labels=[f"{a:.2f}%" for a in acc], fontsize=8, padding=3)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlim(max(0.0, min(acc) - 10), 100)
    ax.set_xlabel(f"test accuracy (%), {result.total} utterances")
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def _write_report(
    result: DemoResult, checks: list[Any], timings: list[Any], out: Path, prefix: str
) -> tuple[Path, Path]:
    from edgelstm.measure.report import Report, plots, write_report

    figures = {
        "test_accuracy": _accuracy_figure(result),
        "accuracy_vs_latency": plots.accuracy_vs_latency(
            [(t.name, t.p50_ms, c.max_abs) for t, c in zip(timings, checks, strict=True)]
        ),
        "latency": plots.latency_distribution([(t.name, t.latencies_ms) for t in timings]),
        "size": plots.size_bars([(t.name, t.size_bytes) for t in timings]),
    }
    accuracy_notes = [
        f"Test accuracy, reference (float64): {result.reference_correct}/{result.total} = "
        f"{result.reference_accuracy:.2%}"
    ] + [
        f"Test accuracy, {v.name} ({Path(v.path).name}, {v.backend}): "
        f"{v.correct}/{v.total} = {v.accuracy:.2%}"
        for v in result.variants
    ]
    ver = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    rep = Report(
        title=f"edgelstm demo: Japanese Vowels speaker ID, {result.description}",
        models=[v.path for v in result.variants],
        verify=checks,
        bench=timings,
        figures=figures,
        notes=accuracy_notes + result.notes + [f"Versions: {ver}."],
        max_error=DEMO_MAX_ERROR,
    )
    return write_report(rep, out / f"{prefix}_report.html")


__all__ = [
    "MODELS",
    "VARIANTS",
    "DemoResult",
    "VariantResult",
    "run_demo",
]
