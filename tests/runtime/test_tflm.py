"""TFLite Micro (backend ``tflm``): our full-int8 files on TFLM's own interpreter vs LiteRT.

The oracle is LiteRT running the same file (an independent implementation of the same int8
kernel): TFLM must agree within 1 LSB of the LSTM output. Files TFLM cannot run (hybrid,
peephole, projection, the 20-input form) must be refused before any load, never crash.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights, from_npz
from edgelstm.errors import InputDataError, UnsupportedError
from edgelstm.inspect import format_info, inspect_model
from edgelstm.inspect.tflm import TFLM_OPS
from edgelstm.ir.options import CompileOptions, Int8Options
from edgelstm.runtime.sandbox import run_isolated
from edgelstm.runtime.select import open_runner
from edgelstm.targets.tflite import lstm_op, save_tflite

ROOT = Path(__file__).resolve().parents[2]
B, T, F, N = 2, 20, 12, 32  # batch, steps, features, cells


def _needs_tflm() -> None:
    pytest.importorskip("tflite_micro", reason="the tflm extra (tflite-micro) is not installed")


def _int8_file(tmp: Path, name: str, spec: LSTMSpec, *, io: bool) -> Path:
    rng = np.random.default_rng(7)
    cal = rng.normal(size=(64, T, spec.n_input)).astype(np.float32)
    path = tmp / f"{name}.tflite"
    model = LSTMModel.of(LSTMWeights.random(spec, seed=3, scale=0.6))
    options = CompileOptions(
        batch=B, seq_len=T, quantize="int8", calibration=cal, int8=Int8Options(io=io)
    )
    save_tflite(model, path, options)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("tflm")
    plain, clip = LSTMSpec(F, N), LSTMSpec(F, N, cell_clip=0.5)
    return {
        f"{name}_{'int8io' if io else 'floatio'}": _int8_file(tmp, f"{name}_{io}", spec, io=io)
        for name, spec in (("plain", plain), ("clip", clip))
        for io in (True, False)
    }


def _lstm_scale(path: Path) -> float:
    """One LSB of the (last) fused LSTM's int8 output."""
    op = inspect_model(path).lstm_ops[-1]
    return float(op.outputs[0].quantization["scale"][0])


@pytest.mark.parametrize("name", ["plain_int8io", "plain_floatio", "clip_int8io", "clip_floatio"])
def test_tflm_agrees_with_litert_within_one_lsb(files, name, capsys):
    _needs_tflm()
    path = files[name]
    x = np.random.default_rng(1).normal(size=(B, T, F)).astype(np.float32)
    with open_runner(path, "tflm") as micro, open_runner(path, "litert") as lite:
        arena = micro.impl.arena_size
        got, want = micro.run(x)[0], lite.run(x)[0]
        again = micro.run(x)[0]  # each run starts from zero state
    lsb = np.rint(np.abs(got.astype(np.float64) - want) / _lstm_scale(path))  # whole LSBs
    differ = float(np.mean(lsb > 0.5))
    with capsys.disabled():
        print(f"\n{name}: arena {arena} B, max {lsb.max():.2f} LSB, {differ:.1%} outputs differ")
    assert got.shape == want.shape == (B, T, N)
    assert lsb.max() <= 1 and differ < 0.2
    np.testing.assert_array_equal(got, again)
    assert 1024 < arena < 64 * 1024


def test_arena_is_the_smallest_that_works(files):
    _needs_tflm()
    from edgelstm.runtime import tflm

    path = files["plain_int8io"]
    arena = tflm.min_arena(path)
    data = path.read_bytes()
    fits = [run_isolated(functools.partial(tflm._fits, data, a)) for a in (arena, arena - 16)]
    assert fits == [True, False]


def test_hybrid_file_is_refused_for_tflm(tmp_path):
    path = tmp_path / "hybrid.tflite"
    save_tflite(
        LSTMModel.of(LSTMWeights.random(LSTMSpec(4, 8), seed=0)),
        path,
        CompileOptions(batch=1, seq_len=5, quantize="dynamic"),
    )
    with pytest.raises(UnsupportedError, match=r"hybrid.*NaN.*--quantize int8"):
        open_runner(path, "tflm")
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM is hybrid" in format_info(inspect_model(path))


def test_peephole_projection_classifier_is_refused_before_loading(tmp_path):
    """The bundled JapaneseVowels classifier (peephole + projection) would crash TFLM."""
    model = from_npz(ROOT / "models" / "japanese_vowels_lstm.npz")
    spec = model.layers[0].forward.spec
    cal = np.random.default_rng(0).normal(size=(16, 10, spec.n_input)).astype(np.float32)
    path = tmp_path / "jv.tflite"
    save_tflite(model, path, CompileOptions(batch=1, seq_len=10, quantize="int8", calibration=cal))
    with pytest.raises(UnsupportedError, match="uses peephole, projection: TFLM's fused LSTM"):
        open_runner(path, "tflm")
    assert "loads on TFLM: no (" in format_info(inspect_model(path))


def test_plain_file_loads_on_tflm_and_refuses_other_shapes(files):
    path = files["plain_int8io"]
    assert "loads on TFLM: yes" in format_info(inspect_model(path))
    _needs_tflm()
    with open_runner(path, "tflm") as micro:
        with pytest.raises(InputDataError, match="takes shape"):
            micro.run(np.zeros((B + 1, T, F), np.float32))
        with pytest.raises(UnsupportedError, match="zero state only"):
            micro.run(np.zeros((B, T, F), np.float32), initial_state=(None, None))


def test_24_input_form_runs_bit_identical_to_20_on_litert(tmp_path, monkeypatch, files):
    """The 24-input form (what TFLM needs) changes nothing on LiteRT; 20 is refused for tflm."""
    x = np.random.default_rng(2).normal(size=(B, T, F)).astype(np.float32)
    outs = {}
    for n in (24, 20):
        monkeypatch.setattr(lstm_op, "N_INPUTS", n)
        path = _int8_file(tmp_path, f"plain_{n}", LSTMSpec(F, N), io=False)
        assert {len(op.inputs) for op in inspect_model(path).lstm_ops} == {n}
        with open_runner(path, "litert") as lite:
            outs[n] = lite.run(x)[0]
    np.testing.assert_array_equal(outs[24], outs[20])
    info = format_info(inspect_model(path))
    assert "has 20 inputs; TFLM requires the 24-input form" in info


def test_op_list_matches_the_installed_tflite_micro():
    """TFLM_OPS (what inspect and the runner check) is what the installed package registers."""
    _needs_tflm()
    import tflite_micro

    lib = next(Path(tflite_micro.__file__).parent.rglob("_runtime*.so"))
    registered = set(re.findall(rb"Register_([A-Z0-9_]+)Ev", lib.read_bytes()))
    names = {r.decode() for r in registered}
    assert names >= TFLM_OPS, sorted(TFLM_OPS - names)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in names and "WHILE" in names


@pytest.mark.parametrize("name", ["plain_int8io", "clip_floatio"])
def test_reused_tflm_interpreter_forgets_state(files, name) -> None:
    """TFLM never resets variables between invokes; our files reset their state in the
    graph, so one interpreter reused for x, x2, x repeats its first answer bit for bit."""
    _needs_tflm()
    from tflite_micro import runtime

    data = files[name].read_bytes()
    interp = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    detail = interp.get_input_details(0)
    rng = np.random.default_rng(5)
    xs = [rng.uniform(-1, 1, size=(B, T, F)).astype(np.float32) for _ in range(2)]
    if np.dtype(detail["dtype"]) == np.int8:
        scale, zp = (
            detail["quantization_parameters"]["scales"][0],
            detail["quantization_parameters"]["zero_points"][0],
        )
        xs = [np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8) for x in xs]
    outs = []
    for x in (xs[0], xs[1], xs[0]):
        interp.set_input(x, 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0), copy=True))
    np.testing.assert_array_equal(outs[2], outs[0])
    fresh = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    fresh.set_input(xs[1], 0)
    fresh.invoke()
    np.testing.assert_array_equal(outs[1], fresh.get_output(0))
