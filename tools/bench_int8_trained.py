"""Int8 on trained LSTMs: every int8 path on a corpus of real, trained models.

    .venv/bin/python tools/bench_int8_trained.py [--models vad,jv,jv_cifg_ln,char_lm]

The corpus (also used by ``tests/oracle/test_int8_trained.py``):

* ``jv`` / ``jv_cifg_ln`` — the bundled Japanese Vowels classifiers (peephole + projection +
  cell clip; CIFG + layer norm), calibrated on the training split, measured on the 370 test
  utterances;
* ``char_lm`` — the bundled character LM (projection + cell clip), calibrated on training
  windows, measured on validation text;
* ``vad`` — the LSTM of the Silero VAD v6 that the faster-whisper wheel ships (ReLU inputs,
  |c| up to ~50), fed the VAD's own features of synthetic speech-like audio (calibration: an
  8 s clip, held out: a 20 s clip). The wheel is fetched with ``pip download --no-deps``.

Per model: the LSTM's output error against the float64 reference in output LSB (full int8
TFLite with ``nearest`` and ``compensated`` weight rounding, hybrid TFLite without and with
calibration data (``hybrid_cal``: compensated weight codes), ONNX dynamic int8),
max error as a fraction of the output range's half-width, and, for classifiers, the share of
held-out decisions (argmax) that flip. Row ``integer``: the all-integer unfused lowering
(``--int8-lowering integer``: int16 gates at chosen scales, int8 I/O) on LiteRT (TFLM for
layer norm), in the fused file's output LSB; row ``int16x8``: the same lowering with int16
activations end to end (``--quantize int16x8``: int16 input, h and outputs; float I/O), in
the same yardstick; row ``int16x8_2p``: int16x8 with two int8 weight planes
(``--weight-planes 2``: ~15-bit weights); row ``latency``: all of them on LiteRT, 1 thread.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from edgelstm import from_npz, reference_model  # noqa: E402
from edgelstm.ir.model import LSTMModel  # noqa: E402
from edgelstm.ir.options import CompileOptions  # noqa: E402
from edgelstm.measure.int8_error import compile_int8, error_stats, run_tflite  # noqa: E402

WHEEL = "faster-whisper==1.2.1"
VAD_ONNX = "faster_whisper/assets/silero_vad_v6.onnx"
VAD_LSTM = "/decoder/rnn/LSTM"
SR, CHUNK, CONTEXT = 16000, 512, 64


@dataclass
class Entry:
    """One trained model with its data (``held_out`` in the model's layout)."""

    name: str
    model: LSTMModel
    calibration: np.ndarray
    held_out: np.ndarray
    classifier: bool = False
    labels: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    decide: Any = None
    """For a detector: LSTM output (model layout) -> its decisions (booleans)."""

    @property
    def lstm_only(self) -> LSTMModel:
        """The LSTM layers alone, every step's output (what int8 error is measured on)."""
        m = self.model
        return LSTMModel(m.layers, head=None, return_sequences=True, time_major=m.time_major)


# -- corpus ----------------------------------------------------------------------------------


def japanese_vowels(variant: str = "") -> Entry:
    d = np.load(ROOT / "models" / "japanese_vowels.npz")
    name = "japanese_vowels_cifg_ln_lstm" if variant else "japanese_vowels_lstm"
    model = from_npz(ROOT / "models" / f"{name}.npz")
    return Entry(
        "jv_cifg_ln" if variant else "jv",
        model,
        d["x_train"].astype(np.float32),
        d["x_test"].astype(np.float32),
        classifier=True,
        labels=d["y_test"],
    )


def char_lm(windows: int = 32, steps: int = 100, held: int = 8) -> Entry:
    from demo_char_lm import VAL_FRACTION, corpus, encode, one_hot

    model = from_npz(ROOT / "models" / "char_lm_lstm.npz")
    prov = model.provenance
    text = corpus()
    cut = int(len(text) * (1 - VAL_FRACTION))
    vocab = prov["vocab"]
    train, val = encode(text[:cut], vocab), encode(text[cut:], vocab)
    starts = np.linspace(0, len(train) - steps - 1, windows).astype(np.int64)
    cal = one_hot(np.stack([train[s : s + steps] for s in starts]), len(vocab))
    vstarts = np.linspace(0, len(val) - steps - 1, held).astype(np.int64)
    x = one_hot(np.stack([val[s : s + steps] for s in vstarts]), len(vocab))
    return Entry("char_lm", model, cal, x, classifier=True)


def _speech_like(seconds: float, seed: int = 15) -> np.ndarray:
    """Voiced syllables and pauses: a gliding pulse train through three formants."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(120 + 20 * np.sin(2 * np.pi * 0.7 * t)) / SR
    source = sum(np.sin(k * phase) / k for k in range(1, 30))
    f = np.fft.rfftfreq(t.size, 1 / SR)
    formants = sum(
        1 / (1 + ((f - fc) / bw) ** 2) for fc, bw in ((700, 130), (1200, 70), (2600, 160))
    )
    voiced = np.fft.irfft(np.fft.rfft(source) * formants, t.size)
    env = np.convolve(
        (np.sin(2 * np.pi * 2.5 * t) > 0.2) * (t % 2 < 1.3), np.ones(160) / 160, "same"
    )
    audio = voiced * env
    noise = 0.003 * rng.standard_normal(t.size)
    return (0.5 * audio / np.abs(audio).max() + noise).astype(np.float32)


def _vad_batch(audio: np.ndarray) -> np.ndarray:
    chunks = audio.reshape(-1, CHUNK)
    context = chunks[:, -CONTEXT:].copy()
    context[-1] = 0
    return np.concatenate([np.roll(context, 1, 0), chunks], 1)


def fetch_vad(cache: Path) -> Path | None:
    """The VAD .onnx from the faster-whisper wheel (None when pip cannot fetch it)."""
    target = cache / VAD_ONNX
    if target.is_file():
        return target
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(cache)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    wheels = sorted(cache.glob("faster_whisper-*.whl"))
    if not wheels:
        return None
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extract(VAD_ONNX, cache)
    return target


def vad(onnx_path: Path) -> Entry:
    """The VAD's LSTM and its inputs (the encoder's features, read with onnxruntime)."""
    import onnx
    import onnxruntime as ort

    from edgelstm.importers import from_onnx

    model = from_onnx(onnx_path, lstm=VAD_LSTM)
    proto = onnx.load(str(onnx_path))
    node = next(n for n in proto.graph.node if n.name == VAD_LSTM)
    proto.graph.output.append(onnx.helper.make_tensor_value_info(node.input[0], 1, None))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    zero = np.zeros((1, 1, 128), np.float32)

    def features(seconds: float) -> np.ndarray:  # [T, 1, 128]
        return sess.run(None, {"input": _vad_batch(_speech_like(seconds)), "h": zero, "c": zero})[
            -1
        ]

    cal = features(8.0).transpose(1, 0, 2)  # batch-major [1, T, 128]
    return Entry("vad", model, cal, features(20.0), decide=_vad_head(onnx_path, node))


def _vad_head(onnx_path: Path, node: Any) -> Any:
    """The VAD's own head after the LSTM (ReLU, Conv1d, sigmoid) on onnxruntime: LSTM output
    [T, 1, 128] -> speech decisions (probability > 0.5)."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(onnx_path))
    consumer = next(n for n in proto.graph.node if node.output[0] in n.input)
    with tempfile.TemporaryDirectory() as tmp:
        head = Path(tmp) / "head.onnx"
        onnx.utils.extract_model(
            str(onnx_path), str(head), [consumer.output[0]], ["speech_probs"], check_model=False
        )
        sess = ort.InferenceSession(str(head), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def decide(y: np.ndarray) -> np.ndarray:
        return sess.run(None, {name: np.asarray(y, np.float32)})[0] > 0.5

    return decide


def corpus(names: list[str], cache: Path) -> list[Entry]:
    out = []
    for name in names:
        if name == "jv":
            out.append(japanese_vowels())
        elif name == "jv_cifg_ln":
            out.append(japanese_vowels("cifg_ln"))
        elif name == "char_lm":
            out.append(char_lm())
        elif name == "vad":
            path = fetch_vad(cache)
            if path is None:
                print(f"vad: skipped ({WHEEL} could not be downloaded)", file=sys.stderr)
                continue
            out.append(vad(path))
    return out


# -- measurements ----------------------------------------------------------------------------


def int8_row(entry: Entry, rounding: str) -> dict[str, float]:
    """Full int8 TFLite: LSTM output error and classifier flips."""
    lstm = entry.lstm_only
    data, plan = compile_int8(lstm, entry.calibration, rounding=rounding)
    y = run_tflite(data, entry.held_out)
    ref = reference_model(lstm, entry.held_out).output
    out = plan.output
    st = error_stats(y, ref, out.scale)
    lo, hi = out.real_range
    row = {"rmse_lsb": st.rmse_lsb, "max": st.max_abs, "max_frac": st.max_abs / ((hi - lo) / 2)}
    if entry.decide is not None:
        row["flips"] = float(np.mean(entry.decide(y) != entry.decide(ref)))
    if entry.classifier:
        full_data, _ = compile_int8(entry.model, entry.calibration, rounding=rounding)
        yf = run_tflite(full_data, entry.held_out)
        rf = reference_model(entry.model, entry.held_out).output
        row["flips"] = float(np.mean(yf.argmax(-1) != rf.argmax(-1)))
    return row


def hybrid_row(entry: Entry, lsb: float, calibrated: bool = False) -> dict[str, float]:
    """Hybrid TFLite; ``calibrated``: with the calibration data (compensated weight codes)."""
    from edgelstm.targets.tflite.fused import to_tflite

    lstm = entry.lstm_only
    cal = entry.calibration if calibrated else None
    data = to_tflite(lstm, CompileOptions(batch=None, quantize="dynamic", calibration=cal))
    st = error_stats(
        run_tflite(data, entry.held_out), reference_model(lstm, entry.held_out).output, lsb
    )
    return {"rmse_lsb": st.rmse_lsb, "max": st.max_abs}


def onnx_dynamic_row(entry: Entry, lsb: float) -> dict[str, float]:
    """ONNX dynamic int8 of the LSTM alone: edgelstm's (scheme measured on the calibration
    data) and onnxruntime's ``quantize_dynamic`` (its defaults) of edgelstm's float export,
    both on the held-out data vs the float64 reference; ``ratio``: ours / ORT's RMSE."""
    import logging

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import quantize_dynamic

    from edgelstm import to_onnx

    lstm = entry.lstm_only
    ours = to_onnx(
        lstm, CompileOptions(batch=None, quantize="dynamic", calibration=entry.calibration)
    )
    with tempfile.TemporaryDirectory() as tmp:  # ORT's own call, nothing of edgelstm's
        src, dst = Path(tmp, "float.onnx"), Path(tmp, "ort.onnx")
        onnx.save(to_onnx(lstm, CompileOptions(batch=None)), src)
        logging.disable(logging.WARNING)  # its pre-processing hint
        try:
            quantize_dynamic(src, dst)
        finally:
            logging.disable(logging.NOTSET)
        theirs = onnx.load(dst)
    ref = reference_model(lstm, entry.held_out).output
    row = {}
    for key, proto in (("", ours), ("ort_", theirs)):
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        y = sess.run(None, {name: entry.held_out.astype(np.float32)})[0]
        st = error_stats(y, ref, lsb)
        row |= {f"{key}rmse_lsb": st.rmse_lsb, f"{key}max": st.max_abs}
    row["ratio"] = row["rmse_lsb"] / row["ort_rmse_lsb"]
    return row


def _shape(entry: Entry, x: np.ndarray) -> tuple[int, int]:
    """(batch, steps) of ``x`` in the model's layout."""
    return (x.shape[1], x.shape[0]) if entry.model.time_major else (x.shape[0], x.shape[1])


def integer_file(model: LSTMModel, entry: Entry, batch: int, steps: int) -> bytes:
    """The all-integer lowering (``--int8-lowering integer``; with layer norm the TFLM
    profile's same lowering, which LiteRT cannot run)."""
    from edgelstm.targets.tflite.int8_choice import integer_refusal, to_tflite_integer
    from edgelstm.targets.tflite.micro import to_tflm

    options = CompileOptions(
        batch=batch, seq_len=steps, quantize="int8", calibration=entry.calibration
    )
    if integer_refusal(model, options) is None:
        return to_tflite_integer(model, options)
    return to_tflm(model, replace(options, target="tflm"), gates="int16")


def run_integer(data: bytes, x: np.ndarray, backend: str = "litert") -> np.ndarray:
    """An int8-I/O file on LiteRT or TFLM (one invoke per batch the file holds), dequantized."""
    from edgelstm.runtime.litert import LiteRTRunner

    runner = LiteRTRunner(data)
    scale, zero = runner.output_quantization[0]
    if backend == "litert":
        y = runner.run(np.asarray(x, np.float32))[0]
    else:
        from edgelstm.runtime.tflm import TFLMRunner

        spec = runner._input
        in_scale, in_zero = spec["quantization"]
        codes = np.clip(np.rint(np.asarray(x, np.float64) / in_scale) + in_zero, -128, 127)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.tflite"
            path.write_bytes(data)
            tflm = TFLMRunner(path)
            batch_axis = 1 if runner.time_major else 0
            chunk = spec["shape"][batch_axis]
            parts = []
            for start in range(0, codes.shape[batch_axis], chunk):
                part = np.take(codes, range(start, start + chunk), axis=batch_axis)
                parts.append(tflm.run(part.astype(np.int8))[0])
            y = np.concatenate(parts, axis=batch_axis if parts[0].ndim == 3 else 0)
    return (y.astype(np.float64) - zero) * scale


def int16x8_file(model: LSTMModel, entry: Entry, batch: int, steps: int, planes: int = 1) -> bytes:
    """``--quantize int16x8`` (float I/O; ``planes`` 2: ``--weight-planes 2``); with layer
    norm for TFLite Micro (LiteRT has no int16 SQUARED_DIFFERENCE)."""
    from edgelstm.ir.options import Int8Options
    from edgelstm.targets.tflite.int8_choice import to_tflite_int16x8

    ln = any(v.weights.spec.layer_norm for v in model.walk())
    options = CompileOptions(
        batch=batch,
        seq_len=steps,
        quantize="int16x8",
        calibration=entry.calibration,
        target="tflm" if ln else "tflite",
        int8=Int8Options(weight_planes=planes),
    )
    return to_tflite_int16x8(model, options)


def run_float_io(data: bytes, x: np.ndarray, backend: str = "litert") -> np.ndarray:
    """A float-I/O file (int16x8) on LiteRT, or on TFLM one batch of the file's at a time."""
    from edgelstm.runtime.litert import LiteRTRunner

    runner = LiteRTRunner(data)
    if backend == "litert":
        return runner.run(np.asarray(x, np.float32))[0].astype(np.float64)
    from edgelstm.runtime.tflm import TFLMRunner

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(data)
        tflm = TFLMRunner(path)
        axis = 1 if runner.time_major else 0
        chunk = runner._input["shape"][axis]
        parts = [
            tflm.run(np.take(x, range(s, s + chunk), axis=axis).astype(np.float32))[0]
            for s in range(0, x.shape[axis], chunk)
        ]
    return np.concatenate(parts, axis=axis if parts[0].ndim == 3 else 0).astype(np.float64)


def _lowering_row(entry: Entry, lsb: float, half_width: float, run_on) -> dict[str, float]:
    """One all-integer lowering against the float64 reference, in the fused file's output
    LSB and half-width (the same yardstick); ``run_on(model, batch, steps, backend)`` builds
    and runs it: LiteRT, or TFLM (one sequence per invoke) when the cell has layer norm
    (LiteRT has no int16 SQUARED_DIFFERENCE)."""
    lstm = entry.lstm_only
    litert = not any(v.weights.spec.layer_norm for v in lstm.walk())
    batch, steps = _shape(entry, entry.held_out)

    def run(model: LSTMModel) -> np.ndarray:
        return run_on(model, batch if litert else 1, steps, "litert" if litert else "tflm")

    y = run(lstm)
    ref = reference_model(lstm, entry.held_out).output
    st = error_stats(y, ref, lsb)
    row = {"rmse_lsb": st.rmse_lsb, "max": st.max_abs, "max_frac": st.max_abs / half_width}
    if entry.decide is not None:
        row["flips"] = float(np.mean(entry.decide(y.astype(np.float32)) != entry.decide(ref)))
    if entry.classifier:
        rf = reference_model(entry.model, entry.held_out).output
        row["flips"] = float(np.mean(run(entry.model).argmax(-1) != rf.argmax(-1)))
    row["tflm"] = float(not litert)
    return row


def int16x8_row(entry: Entry, lsb: float, half_width: float, planes: int = 1) -> dict[str, float]:
    """``--quantize int16x8`` (``planes``: int8 weight planes), see :func:`_lowering_row`."""

    def run_on(model: LSTMModel, batch: int, steps: int, backend: str) -> np.ndarray:
        data = int16x8_file(model, entry, batch, steps, planes)
        return run_float_io(data, entry.held_out, backend)

    return _lowering_row(entry, lsb, half_width, run_on)


def integer_row(entry: Entry, lsb: float, half_width: float) -> dict[str, float]:
    """The all-integer lowering with int8 I/O, see :func:`_lowering_row`."""

    def run_on(model: LSTMModel, batch: int, steps: int, backend: str) -> np.ndarray:
        return run_integer(integer_file(model, entry, batch, steps), entry.held_out, backend)

    return _lowering_row(entry, lsb, half_width, run_on)


def latency_row(entry: Entry, runs: int = 30) -> dict[str, float]:
    """LiteRT, 1 thread, batch 1, one held-out sequence: median ms of the fused int8 file,
    the integer lowering and int16x8, invokes interleaved."""
    import time

    from ai_edge_litert.interpreter import Interpreter

    from edgelstm.targets.tflite.int8_choice import integer_refusal

    lstm = entry.lstm_only
    _, steps = _shape(entry, entry.held_out)
    options = CompileOptions(batch=1, seq_len=steps, quantize="int8", calibration=entry.calibration)
    if integer_refusal(lstm, options) is not None:
        return {}
    from edgelstm.targets.tflite.fused import to_tflite

    files = {
        "fused": to_tflite(lstm, options),
        "integer": integer_file(lstm, entry, 1, steps),
        "int16x8": int16x8_file(lstm, entry, 1, steps),
        "int16x8_2p": int16x8_file(lstm, entry, 1, steps, planes=2),
    }
    interpreters = {}
    for name, data in files.items():
        it = Interpreter(model_content=data, num_threads=1)
        it.allocate_tensors()
        spec = it.get_input_details()[0]
        it.set_tensor(spec["index"], np.zeros(spec["shape"], spec["dtype"]))
        it.invoke()  # warm-up
        interpreters[name] = it
    times: dict[str, list[float]] = {name: [] for name in files}
    for _ in range(runs):
        for name, it in interpreters.items():
            start = time.perf_counter()
            it.invoke()
            times[name].append(time.perf_counter() - start)
    row = {f"{name}_ms": 1e3 * float(np.median(t)) for name, t in times.items()}
    row.update({f"{name}_kb": len(data) / 1024 for name, data in files.items()})
    return row


def measure(entry: Entry) -> dict[str, dict[str, float]]:
    rows = {r: int8_row(entry, r) for r in ("nearest", "compensated")}
    lsb = compile_int8(entry.lstm_only, entry.calibration)[1].output.scale
    rows["hybrid"] = hybrid_row(entry, lsb)
    rows["hybrid_cal"] = hybrid_row(entry, lsb, calibrated=True)
    rows["onnx_dynamic"] = onnx_dynamic_row(entry, lsb)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="jv,jv_cifg_ln,char_lm,vad")
    parser.add_argument(
        "--no-integer",
        dest="integer",
        action="store_false",
        help="skip the all-integer lowerings' rows (integer, int16x8: error, LiteRT latency "
        "vs fused)",
    )
    parser.add_argument("--cache", type=Path, help="where the wheel goes (default: a tmp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        for entry in corpus(args.models.split(","), cache):
            rows = measure(entry)
            if args.integer:
                _, plan = compile_int8(entry.lstm_only, entry.calibration)
                lo, hi = plan.output.real_range
                rows["integer"] = integer_row(entry, plan.output.scale, (hi - lo) / 2)
                rows["int16x8"] = int16x8_row(entry, plan.output.scale, (hi - lo) / 2)
                rows["int16x8_2p"] = int16x8_row(entry, plan.output.scale, (hi - lo) / 2, 2)
                rows["latency"] = latency_row(entry)
            for path, row in rows.items():
                cells = "  ".join(f"{k} {v:.4g}" for k, v in row.items())
                print(f"{entry.name:<11} {path:<13} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
