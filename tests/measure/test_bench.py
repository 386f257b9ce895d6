"""``edgelstm bench``: interleaved timing, percentiles, throughput, size, peak memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _verify_helpers import SEQ_LEN, build_variants, cli, stderr_lines

from edgelstm.cli.main import main
from edgelstm.measure.bench import DEFAULT_SEQ_LEN, bench, format_results, peak_memory


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    return build_variants(tmp_path_factory.mktemp("bench"))


def test_bench_two_formats(variants):
    paths = [variants["float"], variants["onnx"], variants["dynamic"]]
    results = bench(paths, runs=30, warmup=3, block=7, seq_len=SEQ_LEN, memory=False)
    assert [r.name for r in results] == ["float.tflite", "float.onnx", "dynamic.tflite"]
    assert min(r.ratio for r in results) == pytest.approx(1.0)
    for r in results:
        assert r.runs == len(r.latencies_ms) == 30
        assert 0 < r.p50_ms <= r.p90_ms <= r.p99_ms
        assert r.input_shape == [1, SEQ_LEN, 4]
        assert r.steps_per_s == pytest.approx(r.sequences_per_s * SEQ_LEN)
        assert r.size_bytes == variants_size(r.path)
        assert r.peak_rss_mb is None
    assert results[1].backend == "ort" and results[0].backend == "litert"
    text = format_results(results)
    assert "x fastest" in text and "float.onnx" in text


def variants_size(path: str) -> int:
    from pathlib import Path

    return Path(path).stat().st_size


class _FakeRunner:
    """Records the order of runs (to check the round-robin)."""

    def __init__(self, name, log):
        from types import SimpleNamespace

        self.name, self.log = name, log
        self.path, self.backend, self.threads = name, "fake", 1
        self.input_shape = [1, 3, 2]
        self.info = SimpleNamespace(time_major=False, format="fake", quantization="float")
        self.info.size_bytes = 10

    def prepare(self, x):
        return x

    def run_prepared(self, x):
        self.log.append(self.name)
        return [np.zeros(1)]

    def close(self):
        pass


def test_round_robin_rotates_order(monkeypatch):
    log: list[str] = []
    from edgelstm.runtime import select

    monkeypatch.setattr(select, "open_runner", lambda p, b, t, **kw: _FakeRunner(str(p), log))
    results = bench(["a", "b", "c"], runs=4, warmup=1, block=2, memory=False)
    assert log == list("abc") + list("aabbcc") + list("bbccaa")
    assert [r.runs for r in results] == [4, 4, 4]


def test_peak_memory_subprocess(variants):
    peak, model = peak_memory(str(variants["float"]), "litert", 1, [1, SEQ_LEN, 4])
    assert peak is not None and peak > 10  # MB: python + numpy + the runtime
    assert model is not None and model >= 0


def test_cli_json(variants, capsys):
    argv = ["bench", str(variants["onnx"]), "--runs", "5", "--warmup", "1", "--json"]
    assert main([*argv, "--no-memory"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert data["backend"] == "ort" and len(data["latencies_ms"]) == 5
    assert data["input_shape"] == [1, DEFAULT_SEQ_LEN, 4]


def test_cli_bad_file_exit_2_one_line(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"12345678")
    proc = cli("bench", str(bad), "--runs", "2")
    assert proc.returncode == 2
    lines = stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("edgelstm bench: error:")


def test_backend_choice_errors(variants):
    from edgelstm.errors import UnsupportedError
    from edgelstm.runtime.select import open_runner

    with pytest.raises(UnsupportedError):
        open_runner(variants["onnx"], "litert")
    with pytest.raises(UnsupportedError):
        open_runner(variants["float"], "ort")
    try:
        import tflite_runtime.interpreter  # noqa: F401
    except ImportError:
        with pytest.raises(UnsupportedError, match="tflite-runtime"):
            open_runner(variants["float"], "tflite-runtime")


@pytest.mark.tf
def test_tf_backend_matches_litert(variants):
    pytest.importorskip("tensorflow")
    from edgelstm.runtime.feeding import run_model
    from edgelstm.runtime.select import open_runner

    x = np.random.default_rng(2).standard_normal((2, SEQ_LEN, 4)).astype("f4")
    with open_runner(variants["dynamic"], "tf") as a, open_runner(variants["dynamic"]) as b:
        assert a.backend == "tf"
        np.testing.assert_allclose(run_model(a, x), run_model(b, x), atol=1e-6)
