"""Our .tflite files on tflite-runtime 2.14, the interpreter many devices still ship.

tflite-runtime 2.14 needs numpy < 2 (its extension is built against the numpy 1 ABI), so it
cannot live in this venv: the test makes a throwaway venv with ``tflite-runtime==2.14.0`` and
``numpy<2``, runs every file there, and compares with the float64 reference here. It is
skipped (with the reason) only when that venv cannot be installed (no package index).
"""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

from edgelstm import DenseHead, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, reference_model
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.tflite import save_tflite

pytestmark = pytest.mark.slow

RUNNER = """
import json, sys
import numpy as np
from tflite_runtime.interpreter import Interpreter, OpResolverType
jobs = json.load(open(sys.argv[1]))
resolvers = {"default": OpResolverType.AUTO,
             "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
for job in jobs:
    for tag, resolver in resolvers.items():
        interp = Interpreter(model_path=job["model"], num_threads=1,
                             experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        out = interp.get_output_details()[0]
        # one interpreter, reused as an app would: x, then another input, then x again
        for k, name in enumerate(("x", "x2", "x")):
            interp.set_tensor(inp["index"], np.load(job[name]).astype(inp["dtype"]))
            interp.invoke()
            np.save(job["y"] + f".{tag}.{k}.npy", interp.get_tensor(out["index"]))
print("ran", len(jobs))
"""


@pytest.fixture(scope="module")
def tflite_runtime_python(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tflite-runtime-venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "tflite-runtime==2.14.0", "numpy<2"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if pip.returncode != 0:
        pytest.skip(f"cannot install tflite-runtime 2.14 here: {pip.stderr.strip()[-300:]}")
    return python


def _models() -> dict[str, tuple[LSTMModel, CompileOptions]]:
    rng = np.random.default_rng(3)
    full = LSTMSpec(
        6,
        8,
        5,
        peephole=True,
        projection=True,
        projection_bias=True,
        layer_norm=True,
        cell_clip=1.0,
        proj_clip=0.8,
    )
    cifg = LSTMSpec(6, 8, cifg=True, peephole=True, activation="relu6")
    w = {
        k: LSTMWeights.random(s, seed=i)
        for i, (k, s) in enumerate({"full": full, "cifg": cifg}.items())
    }
    stacked = LSTMModel(
        (
            LSTMLayer(w["cifg"], LSTMWeights.random(LSTMSpec(6, 4), seed=5)),
            LSTMLayer(LSTMWeights.random(LSTMSpec(12, 6), seed=6)),
        ),
        head=DenseHead(rng.normal(size=(3, 6)), rng.normal(size=3), "softmax"),
        return_sequences=False,
    )
    return {
        "float_full_features": (LSTMModel.of(w["full"]), CompileOptions(batch=2, seq_len=7)),
        "float_bidi_stacked_head": (stacked, CompileOptions(batch=2, seq_len=7)),
        "hybrid_full_features": (
            LSTMModel.of(w["full"]),
            CompileOptions(batch=2, seq_len=7, quantize="dynamic"),
        ),
        "int8_peephole": (
            LSTMModel.of(LSTMWeights.random(LSTMSpec(6, 8, peephole=True), seed=9, scale=0.6)),
            CompileOptions(
                batch=2,
                seq_len=7,
                quantize="int8",
                calibration=rng.normal(size=(64, 7, 6)).astype(np.float32),
            ),
        ),
    }


TOLERANCE = {"float": 1e-5, "hybrid": 0.05, "int8": 0.05}


def test_files_run_and_forget_state_on_tflite_runtime_214(tflite_runtime_python, tmp_path):
    rng = np.random.default_rng(0)
    jobs, expected = [], {}
    for name, (model, options) in _models().items():
        model_path = tmp_path / f"{name}.tflite"
        save_tflite(model, model_path, options)
        x, x2 = rng.normal(size=(2, 2, 7, 6)).astype(np.float32)
        np.save(tmp_path / f"{name}_x.npy", x)
        np.save(tmp_path / f"{name}_x2.npy", x2)
        expected[name] = (reference_model(model, x).output, reference_model(model, x2).output)
        jobs.append(
            {
                "model": str(model_path),
                "x": str(tmp_path / f"{name}_x.npy"),
                "x2": str(tmp_path / f"{name}_x2.npy"),
                "y": str(tmp_path / f"{name}_y"),
            }
        )
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    (tmp_path / "runner.py").write_text(RUNNER)
    run = subprocess.run(
        [str(tflite_runtime_python), str(tmp_path / "runner.py"), str(tmp_path / "jobs.json")],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    for name, (want, want2) in expected.items():
        tol = TOLERANCE[name.split("_")[0]]
        for tag in ("default", "builtin"):
            first, second, again = (np.load(tmp_path / f"{name}_y.{tag}.{k}.npy") for k in range(3))
            err = float(np.abs(first - want).max())
            assert err <= tol, f"{name} ({tag}): max error {err:.3g}"
            err2 = float(np.abs(second - want2).max())
            assert err2 <= tol, f"{name} ({tag}), reused interpreter: max error {err2:.3g}"
            # the file carries no state: the reused interpreter repeats its first answer
            np.testing.assert_array_equal(again, first, err_msg=f"{name} ({tag})")
