"""Whole-graph dynamic int8: edgelstm's rewrite vs onnxruntime's ``quantize_dynamic``, side by side.

For each model (the exporter corpus of tests/oracle/_exporter_corpus.py at its test sizes,
two larger torch exports — Linear(64)->LSTM(128->256)->Linear and a 2-layer bidirectional
LSTM(64, 128) — and, with ``--vad PATH``, the pretrained Silero VAD):

* ``ort float``: onnxruntime on the original graph (the reference for every error);
* ``ort dynamic``: ``onnxruntime.quantization.quantize_dynamic`` of the original, its
  defaults (QInt8 weights) — what a user gets without edgelstm;
* ``ort dynamic 7-bit``: the same with ``reduce_range=True`` (onnxruntime's setting that
  never saturates its u8 x s8 kernels on CPUs without VNNI);
* ``edgelstm float``: ``edgelstm compile model.onnx -o out.onnx``;
* ``edgelstm dynamic``: ``... --quantize dynamic`` (the weight scheme chosen by measured error
  among pair-safe, full-range, 7-bit, uint8 and ORT's defaults, by the default "accuracy"
  policy: never less accurate than ORT's defaults here nor simulated without VNNI, the
  fastest such: :mod:`edgelstm.targets.onnx.scheme_choice`);
* ``edgelstm dynamic portable``: the same with ``--onnx-dynamic-priority portable`` (the
  policy before: judged by the simulated error without VNNI; safe int8 over uint8 whenever
  it keeps ORT's simulated non-VNNI error).

The ``scheme`` column is each policy's choice (accuracy / portable), ``*`` when ORT's defaults
saturate without VNNI (so they may measure better here). A second table gives, per model,
each policy's RMS error and latency over ``ort dynamic``'s, and the geometric means.

Error: max |difference| over ALL graph outputs vs ``ort float`` on seeded N(0, 1) inputs.
"sat" marks a quantized model with int8 weight pairs that saturate on CPUs without VNNI
(:func:`edgelstm.targets.onnx.weight_schemes.pair_sums` above ``PAIR_LIMIT``): its error
there is larger than measured here on a VNNI machine.
Latency: one session per variant (1 thread), all variants of a model timed interleaved in
blocks (the order rotating per round); the median over rounds of the per-run block mean.

    .venv/bin/python tools/bench_onnx_dynamic.py [--rounds 30] [--block 20] [--vad PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = (
    "ort float",
    "ort dynamic",
    "ort dynamic 7-bit",
    "edgelstm float",
    "edgelstm dynamic",
    "edgelstm dynamic portable",
)
POLICIES = {"accuracy": "edgelstm dynamic", "portable": "edgelstm dynamic portable"}


def _corpus(root: Path) -> dict[str, tuple[Path, dict[str, np.ndarray]]]:
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "oracle")]
    from _exporter_corpus import control_flow_cases, tf2onnx_cases, torch_cases

    cases = torch_cases(root) | control_flow_cases(root)
    with contextlib.suppress(ImportError):
        cases |= tf2onnx_cases(root)
    out = {name: (c.path, c.x) for name, c in cases.items()}
    return out | _larger(root)


def _larger(root: Path) -> dict[str, tuple[Path, dict[str, np.ndarray]]]:
    """Sizes where the int8 kernels matter (T 50, batch 1)."""
    import torch

    torch.manual_seed(0)

    class LinLstmLin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(64, 128), torch.nn.Linear(256, 10)
            self.lstm = torch.nn.LSTM(128, 256, batch_first=True)

        def forward(self, x):
            return self.b(self.lstm(self.a(x))[0])

    class Bidi(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(64, 128, 2, bidirectional=True, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0]

    out = {}
    for name, module in (("torch_lin_lstm256_lin", LinLstmLin()), ("torch_bidi2_128", Bidi())):
        x = torch.randn(1, 50, 64)
        path = root / f"{name}.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(None):
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), (x,), str(path), dynamo=False, input_names=["x"])
        out[name] = (path, {"x": x.numpy()})
    return out


def _scheme(data: bytes) -> str:
    """The chosen scheme recorded in an edgelstm dynamic file (``*``: ORT's defaults saturate)."""
    import json

    import onnx

    from edgelstm.targets.onnx.scheme_choice import SCHEME_KEY

    props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    if SCHEME_KEY not in props:
        return "?"
    record = json.loads(props[SCHEME_KEY])
    return record["chosen"] + ("*" if record.get("ort_default_saturates") else "")


def _variants(path: Path, root: Path) -> dict[str, bytes | str]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgelstm.targets.onnx.rewrite import rewrite_onnx
    from edgelstm.targets.onnx.rewrite.quantize import quantize_whole

    ortq, ortq7 = root / f"{path.stem}.ortq.onnx", root / f"{path.stem}.ortq7.onnx"
    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(str(path), str(ortq), weight_type=QuantType.QInt8)
    quantize_dynamic(str(path), str(ortq7), weight_type=QuantType.QInt8, reduce_range=True)
    ours, report = rewrite_onnx(path)
    weights = {n for r in report.applied for n in r.info.get("weights", [])}
    quantized = {  # what rewrite_onnx(path, quantize="dynamic") does, with each policy
        p: quantize_whole(ours, weights, priority=p).SerializeToString() for p in POLICIES
    }
    return {
        "ort float": str(path),  # a path: torch's dynamo export keeps weights in .onnx.data
        "ort dynamic": str(ortq),
        "ort dynamic 7-bit": str(ortq7),
        "edgelstm float": ours.SerializeToString(),
        "edgelstm dynamic": quantized["accuracy"],
        "edgelstm dynamic portable": quantized["portable"],
    }


def _saturates(data: bytes | str) -> bool:
    import onnx

    from edgelstm.targets.onnx.weight_schemes import PAIR_LIMIT, pair_sums

    model = onnx.load(data) if isinstance(data, str) else onnx.load_from_string(data)
    return any(s > PAIR_LIMIT for s in pair_sums(model).values())


def _session(data: bytes | str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _feeds(sess: ort.InferenceSession, given: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The corpus feeds, re-drawn N(0, 1) (seeded) for float inputs."""
    rng = np.random.default_rng(0)
    feeds = {}
    for i in sess.get_inputs():
        v = given[i.name]
        feeds[i.name] = (
            rng.standard_normal(v.shape).astype(np.float32) if v.dtype.kind == "f" else v
        )
    return feeds


def _measure(sessions: dict, feeds: dict, rounds: int, block: int) -> dict[str, float]:
    names = list(sessions)
    for s in sessions.values():  # warm-up
        for _ in range(5):
            s.run(None, feeds)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            for _ in range(block):
                sessions[n].run(None, feeds)
            times[n].append((time.perf_counter() - start) / block)
    return {n: statistics.median(t) * 1e3 for n, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--block", type=int, default=20)
    p.add_argument("--vad", type=Path, help="a Silero VAD .onnx (state inputs h, c)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = _corpus(root)
        if args.vad is not None:
            sys.path.insert(0, str(ROOT / "tests" / "oracle"))
            from test_pretrained_vad import _speech_like, _vad_batch

            zero = np.zeros((1, 1, 128), np.float32)
            models["silero_vad"] = (
                args.vad,
                {"input": _vad_batch(_speech_like()), "h": zero, "c": zero},
            )
        header = "| model | " + " | ".join(f"{v} err / ms" for v in VARIANTS) + " | scheme |"
        print(header)
        print("|" + "---|" * (len(VARIANTS) + 2))
        rms_all: dict[str, list[float]] = {v: [] for v in VARIANTS}
        ms_all: dict[str, list[float]] = {v: [] for v in VARIANTS}
        names: list[str] = []
        schemes: list[str] = []
        for name, (path, given) in models.items():
            variants = _variants(Path(path), root)
            sessions = {v: _session(d) for v, d in variants.items()}
            feeds = _feeds(sessions["ort float"], given)
            if name == "silero_vad":
                feeds = given  # real speech-like audio, zero state
            if "cond" in feeds:
                feeds["cond"] = np.array(True)
            want = sessions["ort float"].run(None, feeds)
            cells = []
            ms = _measure(sessions, feeds, args.rounds, args.block)
            for v in VARIANTS:
                got = sessions[v].run(None, feeds)
                err = max(float(np.abs(w - g).max()) for w, g in zip(want, got, strict=True))
                sat = " sat" if _saturates(variants[v]) else ""
                cells.append(f"{err:.1e} / {ms[v]:.3f}{sat}")
                rms_all[v].append(_rms(want, got))
                ms_all[v].append(ms[v])
            scheme = " / ".join(_scheme(variants[v]) for v in POLICIES.values())  # type: ignore
            names.append(name)
            schemes.append(scheme)
            print(f"| {name} | " + " | ".join(cells) + f" | {scheme} |", flush=True)
        _ratios(names, schemes, rms_all, ms_all)


def _geo(values: list[float]) -> str:
    if not values:
        return "-"
    mean = float(np.exp(np.mean(np.log(values))))
    return f"{mean:.2f} ({min(values):.2f}-{max(values):.2f})"


def _ratios(
    names: list[str],
    schemes: list[str],
    rms_all: dict[str, list[float]],
    ms_all: dict[str, list[float]],
) -> None:
    """Per model, each policy's RMS error and latency over ORT's defaults (``ort dynamic``),
    and their geometric means over the models where ORT's defaults quantize (error > 0)."""
    print("\n| model | " + " | ".join(f"{p}: err / ms vs ort dynamic" for p in POLICIES), end="")
    print(" | scheme (accuracy / portable) |\n|---|---|---|---|")
    ref_rms, ref_ms = rms_all["ort dynamic"], ms_all["ort dynamic"]
    err: dict[str, list[float]] = {p: [] for p in POLICIES}
    lat: dict[str, list[float]] = {p: [] for p in POLICIES}
    for i, name in enumerate(names):
        cells = []
        for p, v in POLICIES.items():
            e = rms_all[v][i] / ref_rms[i] if ref_rms[i] > 0 else float("nan")
            t = ms_all[v][i] / ref_ms[i]
            cells.append(f"{e:.2f} / {t:.2f}" if ref_rms[i] > 0 else f"- / {t:.2f}")
            if ref_rms[i] > 0 and rms_all[v][i] > 0:
                err[p].append(e)
                lat[p].append(t)
        print(f"| {name} | " + " | ".join(cells) + f" | {schemes[i]} |")
    for p, v in POLICIES.items():
        seven = [
            a / b for a, b in zip(rms_all[v], rms_all["ort dynamic 7-bit"], strict=True) if a and b
        ]
        print(
            f"\n{p} ({v}), geometric mean (min-max) over {len(err[p])} models where ORT's "
            f"defaults quantize: RMS error / ort dynamic {_geo(err[p])}, latency / ort "
            f"dynamic {_geo(lat[p])}; RMS error / ort dynamic 7-bit {_geo(seven)}"
        )


def _rms(want: list[np.ndarray], got: list[np.ndarray]) -> float:
    """RMS error over all outputs (less noisy than the max over a few values)."""
    diffs = np.concatenate([np.ravel(w - g) for w, g in zip(want, got, strict=True)])
    return float(np.sqrt(np.mean(np.square(diffs.astype(np.float64)))))


if __name__ == "__main__":
    main()
