"""A pretrained LSTM from a pip wheel: the Silero VAD that faster-whisper ships.

The wheel is downloaded at test time (nothing committed); its ``.onnx`` holds a CNN encoder,
one LSTM whose states are graph inputs (``h``/``c``: the VAD's streaming state, carried by
the caller) and a Conv head. ``inspect`` must list every LSTM node, ``compile --lstm NAME``
must give a fused TFLite file, and that file must match onnxruntime running the ORIGINAL
graph (the LSTM's X and Y exposed as graph outputs) on the VAD's own features of a
speech-like signal, run the way faster-whisper runs it (all 512-sample chunks, with 64
samples of context, as one sequence), from zero state and from a carried state.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgelstm import UnsupportedError
from edgelstm.cli.main import main
from edgelstm.importers import from_onnx
from edgelstm.inspect import inspect_model
from edgelstm.runtime import LiteRTRunner

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow
WHEEL = "faster-whisper==1.2.1"
SR, CHUNK, CONTEXT = 16000, 512, 64  # faster_whisper.vad.SileroVADModel's framing
TOL = 1e-5


@pytest.fixture(scope="module")
def vad_models(tmp_path_factory) -> list[Path]:
    """The .onnx files inside the faster-whisper wheel (skipped when pip cannot fetch it)."""
    root = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(root)]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot download {WHEEL}: {exc}")
    wheels = sorted(root.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        pytest.skip(f"cannot download {WHEEL}: {done.stderr.strip()[-300:]}")
    out = []
    with zipfile.ZipFile(wheels[0]) as zf:
        for name in zf.namelist():
            if name.endswith(".onnx"):
                out.append(Path(zf.extract(name, root)))
    assert out, f"{WHEEL} ships no .onnx file"
    return out


def _lstm_nodes(graph: onnx.GraphProto, path: str = "") -> list[tuple[str, onnx.NodeProto]]:
    """Every LSTM node with the names of the nodes whose subgraphs hold it (own walk)."""
    found = []
    for node in graph.node:
        if node.op_type == "LSTM":
            found.append((path, node))
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == attr.GRAPH else list(attr.graphs):
                found += _lstm_nodes(sub, f"{path}/{node.name}")
    return found


def _speech_like(seconds: float = 4.0) -> np.ndarray:
    """Voiced syllables and pauses: a gliding ~120 Hz pulse train shaped by three formants,
    with a syllabic envelope and a little noise (no audio file needed)."""
    rng = np.random.default_rng(15)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(120 + 20 * np.sin(2 * np.pi * 0.7 * t)) / SR
    source = sum(np.sin(k * phase) / k for k in range(1, 30))
    f = np.fft.rfftfreq(t.size, 1 / SR)
    formants = sum(
        1 / (1 + ((f - fc) / bw) ** 2) for fc, bw in ((700, 130), (1200, 70), (2600, 160))
    )
    voiced = np.fft.irfft(np.fft.rfft(source) * formants, t.size)
    envelope = np.convolve(
        (np.sin(2 * np.pi * 2.5 * t) > 0.2) * (t % 2 < 1.3), np.ones(160) / 160, "same"
    )
    audio = voiced * envelope
    return (0.5 * audio / np.abs(audio).max() + 0.003 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def _vad_batch(audio: np.ndarray) -> np.ndarray:
    """faster_whisper.vad.SileroVADModel.__call__'s input: chunks with their left context."""
    chunks = audio.reshape(-1, CHUNK)
    context = chunks[:, -CONTEXT:].copy()
    context[-1] = 0
    return np.concatenate([np.roll(context, 1, 0), chunks], 1)


def _cell_max(model: onnx.ModelProto, node: onnx.NodeProto, x: np.ndarray) -> float:
    """max |c| over the sequence: a float64 numpy LSTM (ONNX gate order i, o, f, c)."""
    init = {
        t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer
    }
    w, r, b = (init[node.input[k]][0] for k in (1, 2, 3))
    hid = r.shape[-1]
    h, c, top = np.zeros(hid), np.zeros(hid), 0.0
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for step in x[:, 0].astype(np.float64):
        i, o, f, g = np.split(w @ step + r @ h + b[: 4 * hid] + b[4 * hid :], 4)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h, top = sig(o) * np.tanh(c), max(top, float(np.abs(c).max()))
    return top


def test_inspect_lists_every_lstm(vad_models):
    for path in vad_models:
        nodes = _lstm_nodes(onnx.load(str(path)).graph)
        assert nodes, path
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["inspect", str(path)]) == 0
        listing = [line for line in out.getvalue().splitlines() if "--lstm" in line]
        for where, node in nodes:
            line = next(line for line in out.getvalue().splitlines() if node.name in line)
            assert all(part in line for part in where.split("/") if part), (where, line)
            assert any(f"--lstm {node.name}" in line for line in listing), node.name
        info = inspect_model(path)
        assert len(info.lstm_nodes) == len(nodes)


def test_whole_graph_is_refused_with_both_ways_out(vad_models):
    for path in vad_models:
        with pytest.raises(UnsupportedError, match=r"Conv .*--lstm NAME"):
            from_onnx(path)


def test_each_lstm_compiles_to_fused_tflite_exactly(vad_models, tmp_path):
    """Zero state, then a carried state (the second half after the first), vs onnxruntime."""
    batch = _vad_batch(_speech_like())
    results = {}
    for path in vad_models:
        model = onnx.load(str(path))
        nodes = _lstm_nodes(model.graph)
        assert [where for where, _ in nodes] == [""], "v6 holds one top-level LSTM (v5 had If)"
        for _, node in nodes:
            out = tmp_path / "vad_lstm.tflite"
            assert main(["compile", str(path), "-o", str(out), "--lstm", node.name]) == 0
            ops = [op.op for op in inspect_model(out).ops]
            assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops, ops
            imported = from_onnx(path, lstm=node.name)
            assert imported.provenance["initial_state_inputs"] == [node.input[5], node.input[6]]
            probe = onnx.load(str(path))
            for name in (node.input[0], node.output[0]):
                probe.graph.output.append(onnx.helper.make_tensor_value_info(name, 1, None))
            sess = ort.InferenceSession(
                probe.SerializeToString(), providers=["CPUExecutionProvider"]
            )
            zero = np.zeros((1, 1, 128), np.float32)
            probs, _, _, x, y = sess.run(None, {"input": batch, "h": zero, "c": zero})
            assert probs.max() > 0.8 and probs.min() < 0.1, "the signal should look like speech"
            runner = LiteRTRunner(out.read_bytes())
            err = float(np.abs(runner.run(x)[0] - y[:, 0]).max())
            half = len(batch) // 2
            _, h1, c1, _, _ = sess.run(None, {"input": batch[:half], "h": zero, "c": zero})
            _, _, _, x2, y2 = sess.run(None, {"input": batch[half:], "h": h1, "c": c1})
            got2 = runner.run(x2, initial_states=[[(h1[0], c1[0])]])[0]
            err_carried = float(np.abs(got2 - y2[:, 0]).max())
            results[node.name] = (err, err_carried, _cell_max(model, node, x), x.shape)
    print(f"\nSilero VAD LSTMs (max abs error, carried-state error, max |c|, X): {results}")
    assert results and all(e <= TOL and e2 <= TOL for e, e2, _, _ in results.values()), results
