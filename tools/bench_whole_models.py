"""Whole-model benchmark (issue 16): edgelstm's one-file conversion vs every other converter.

For each test model of the issue, at realistic sizes (LSTM units 128-256, T 50-100):

* Keras 3 models (Embedding->LSTM->Dense(softmax); Conv1D->MaxPool->LSTM->Dense;
  LSTM(return_sequences)->TimeDistributed(Dense); Masking->LSTM->Dense;
  Dense->Bidirectional(LSTM)->Dense): edgelstm (default, and ``optimize="latency"``), TF's
  Keras 3 converter, and the legacy tf-keras converter on the same weights;
* tf-keras: a peephole/projection ``LSTMCell`` inside ``RNN`` between Dense layers:
  edgelstm vs the legacy converter;
* PyTorch: Conv1d->LSTM(proj_size)->Linear and a CRNN Conv2d->BiLSTM->Linear: edgelstm
  (:func:`edgelstm.whole.torch_split.torch_to_tflite`) vs litert-torch on the whole module;
* onnx2tf where installed (it is not a dependency; shown as a skip otherwise).

Float and dynamic-range each. Every file runs on LiteRT's Interpreter (default delegates, 1
thread, batch 1); max abs error vs the framework's own float output on the same inputs. All
files of a model are timed interleaved (blocks of 10, order rotated), repeated in fresh
processes; the table has the median of the p50s and the ratio to the fastest competitor of
the same model and quantization. A competitor that fails is a row "refused: reason".

TensorFlow and torch run only in stage subprocesses (TF_USE_LEGACY_KERAS=1 for the legacy
one), and timing runs in processes that import only LiteRT.

    .venv/bin/python tools/bench_whole_models.py [--quick] [--runs 200] [--repeats 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _tf_anchors import run_stage

SEED = 20261206
QUANTS = ("float", "dynamic")
OURS, OURS_OPT = "edgelstm", "edgelstm --optimize latency"
VOCAB, EMBED, UNITS, CLASSES = 2000, 64, 128, 10
KERAS_MODELS = ("embed", "conv", "tagger", "masked", "bidi")
TORCH_MODELS = ("torch_conv1d_proj", "torch_crnn")


def log(msg: str) -> None:
    print(f"[whole {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------- models (K: keras / tf_keras)
def keras_model(K, name: str):
    L = K.layers
    if name == "embed":
        layers = [K.Input((100,), dtype="int32", batch_size=1), L.Embedding(VOCAB, EMBED),
                  L.LSTM(UNITS), L.Dense(CLASSES, activation="softmax")]  # fmt: skip
    elif name == "conv":
        layers = [K.Input((100, 40), batch_size=1), L.Conv1D(64, 3, activation="relu"),
                  L.MaxPooling1D(2), L.LSTM(UNITS), L.Dense(CLASSES)]  # fmt: skip
    elif name == "tagger":
        layers = [K.Input((50, 64), batch_size=1), L.LSTM(UNITS, return_sequences=True),
                  L.TimeDistributed(L.Dense(20, activation="softmax"))]  # fmt: skip
    elif name == "masked":
        layers = [K.Input((50, 32), batch_size=1), L.Masking(), L.LSTM(UNITS),
                  L.Dense(CLASSES)]  # fmt: skip
    elif name == "bidi":
        layers = [K.Input((50, 32), batch_size=1), L.Dense(64, activation="relu"),
                  L.Bidirectional(L.LSTM(UNITS)), L.Dense(CLASSES)]  # fmt: skip
    elif name == "peephole":
        import tensorflow as tf

        cell = tf.compat.v1.nn.rnn_cell.LSTMCell(256, use_peepholes=True, num_proj=128)
        layers = [K.Input((50, 32), batch_size=1), L.Dense(64, activation="tanh"), L.RNN(cell),
                  L.Dense(CLASSES)]  # fmt: skip
    else:
        raise KeyError(name)
    return K.Sequential(layers)


def eval_inputs(name: str, shape: tuple, n: int):
    import numpy as np

    rng = np.random.default_rng(SEED + 1)
    if name == "embed":
        return rng.integers(1, VOCAB, (n, *shape)).astype(np.int32)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    if name == "masked":  # post-padded to random lengths
        for k, length in enumerate(rng.integers(shape[0] // 2, shape[0] + 1, n)):
            x[k, length:] = 0.0
    return x


# ----------------------------------------------------------------- stages (subprocesses)
def _try(rows: list, model: str, label: str, quant: str, out: Path, build, *args) -> None:
    """Build one file; a failure is a 'refused' row, never a crash."""
    path = out / f"{model}__{label.replace(' ', '_').replace('-', '')}__{quant}.tflite"
    row = {"model": model, "label": label, "quant": quant}
    try:
        data = build(*args, "none" if quant == "float" else quant)
        if isinstance(data, tuple):
            data, row["note"] = data
        path.write_bytes(data)
        row["path"] = str(path)
    except Exception as exc:  # noqa: BLE001 - a competitor's failure is a table cell
        row["refused"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:110]}"
    rows.append(row)


def _ours(model, optimize: bool, q: str):
    from edgelstm.ir.options import CompileOptions
    from edgelstm.whole.keras_tflite import keras_to_tflite

    options = CompileOptions(batch=1, quantize=q)
    if not optimize:
        return keras_to_tflite(model, options).data
    result = keras_to_tflite(model, options, optimize="latency", runs=60)
    return result.data, _choice_note(result.optimize)


def _choice_note(table) -> str:
    """The chosen lowering(s), and why no unfused one was chosen when none was."""
    note = "; ".join(table.chosen.lowerings)
    if all(low == "fused" for low in table.chosen.lowerings):
        lost = [c for c in table.candidates if not c.chosen and c.verdict]
        if lost:
            note += f"; {lost[0].name}: {lost[0].verdict}"
    return note


def _tf_convert(model, quant: str) -> bytes:
    """TF's converter as a user calls it (``quant`` "none" or "dynamic")."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


def _save_reference(out: Path, name: str, model, x) -> None:
    import numpy as np

    np.save(out / f"{name}__x.npy", x)
    np.save(out / f"{name}__ref.npy", np.asarray(model(x, training=False), dtype=np.float64))


def stage_keras3(out: Path, n_eval: int, models: list[str]) -> dict:
    import keras
    import numpy as np

    rows: list = []
    for name in [m for m in models if m in KERAS_MODELS]:
        log(f"{name}: Keras 3 model, edgelstm and the Keras 3 converter")
        keras.utils.set_random_seed(SEED)
        model = keras_model(keras, name)
        np.savez(out / f"{name}__weights.npz", *model.get_weights())
        _save_reference(out, name, model, eval_inputs(name, model.input_shape[1:], n_eval))
        for quant in QUANTS:
            _try(rows, name, OURS, quant, out, _ours, model, False)
            _try(rows, name, OURS_OPT, quant, out, _ours, model, True)
            _try(rows, name, "TF Keras 3 converter", quant, out, _tf_convert, model)
    return {"rows": rows}


def stage_legacy(out: Path, n_eval: int, models: list[str]) -> dict:
    import numpy as np
    import tf_keras

    rows: list = []
    for name in [m for m in models if m in (*KERAS_MODELS, "peephole")]:
        log(f"{name}: tf-keras model and the legacy converter")
        tf_keras.utils.set_random_seed(SEED)
        model = keras_model(tf_keras, name)
        if name == "peephole":  # tf-keras only: its own weights and reference
            _save_reference(out, name, model, eval_inputs(name, model.input_shape[1:], n_eval))
        else:
            w = np.load(out / f"{name}__weights.npz")
            model.set_weights([w[f"arr_{k}"] for k in range(len(w.files))])
        for quant in QUANTS:
            if name == "peephole":
                _try(rows, name, OURS, quant, out, _ours, model, False)
                _try(rows, name, OURS_OPT, quant, out, _ours, model, True)
            label = "TF legacy converter (tf-keras)"
            _try(rows, name, label, quant, out, _tf_convert, model)
    return {"rows": rows}


def torch_module(name: str):
    import torch

    class Conv1dLstmProj(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv1d(40, 64, 3, padding=1)
            self.lstm = torch.nn.LSTM(64, 256, batch_first=True, proj_size=128)
            self.fc = torch.nn.Linear(128, CLASSES)

        def forward(self, x):
            y, _ = self.lstm(torch.relu(self.conv(x)).transpose(1, 2))
            return self.fc(y)

    class Crnn(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 16, 3, padding=1)
            self.pool = torch.nn.MaxPool2d((2, 1))
            self.lstm = torch.nn.LSTM(256, UNITS, bidirectional=True, batch_first=True)
            self.fc = torch.nn.Linear(2 * UNITS, 20)

        def forward(self, x):
            f = self.pool(torch.relu(self.conv(x)))
            b, c, h, w = f.shape
            y, _ = self.lstm(f.permute(0, 3, 1, 2).reshape(b, w, c * h))
            return self.fc(y)

    torch.manual_seed(SEED)
    if name == "torch_conv1d_proj":
        return Conv1dLstmProj().eval(), (40, 100)
    return Crnn().eval(), (1, 32, 100)


def stage_torch(out: Path, n_eval: int, models: list[str]) -> dict:
    import numpy as np
    import torch

    rows: list = []
    for name in [m for m in models if m in TORCH_MODELS]:
        log(f"{name}: edgelstm (torch_to_tflite) and litert-torch")
        module, shape = torch_module(name)
        x = eval_inputs(name, shape, n_eval)
        with torch.no_grad():
            ref = np.stack([module(torch.from_numpy(r[None]))[0].numpy() for r in x])
        np.save(out / f"{name}__x.npy", x)
        np.save(out / f"{name}__ref.npy", ref.astype(np.float64))
        example = torch.from_numpy(x[:1])
        for quant in QUANTS:
            _try(rows, name, OURS, quant, out, _ours_torch, module, example, False)
            _try(rows, name, OURS_OPT, quant, out, _ours_torch, module, example, True)
            _try(rows, name, "litert-torch", quant, out, _litert_torch, module, example)
    return {"rows": rows}


def _ours_torch(module, example, optimize: bool, q: str):
    from edgelstm.ir.options import CompileOptions
    from edgelstm.whole.torch_split import torch_to_tflite

    if not optimize:
        return torch_to_tflite(module, example, CompileOptions(quantize=q))
    from edgelstm.whole.optimize import optimize_torch

    data, table = optimize_torch(module, example, CompileOptions(quantize=q), runs=60)
    return data, _choice_note(table)


def _litert_torch(module, example, quant: str) -> bytes:
    import litert_torch

    data = bytes(litert_torch.convert(module, (example,)).model_content())
    if quant == "dynamic":  # ai-edge-quantizer's dynamic recipe (what litert-torch offers)
        from ai_edge_quantizer import quantizer, recipe

        q = quantizer.Quantizer(data)
        q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        data = bytes(q.quantize().quantized_model)
    return data


STAGES = {"keras3": stage_keras3, "legacy": stage_legacy, "torch": stage_torch}


# ----------------------------------------------------------------- timing (fresh processes)
def time_job(job_path: Path) -> None:
    import numpy as np

    from edgelstm.whole.optimize import time_interleaved

    job = json.loads(job_path.read_text())
    result = {}
    for model, group in job["groups"].items():
        x = np.load(group["x"])
        files = [Path(p).read_bytes() for p in group["paths"]]
        p50 = time_interleaved(files, x, runs=job["runs"], warmup=max(5, job["runs"] // 10))
        result[model] = p50
    Path(f"{job_path}.out").write_text(json.dumps(result))


def measure(out: Path, rows: list, runs: int, repeats: int) -> None:
    """Error of every built file, then ``repeats`` fresh-process interleaved timings."""
    import numpy as np

    from edgelstm.whole.optimize import run_file

    for row in rows:
        if "path" not in row:
            continue
        data = Path(row["path"]).read_bytes()
        row["kb"] = len(data) / 1024
        x, ref = np.load(out / f"{row['model']}__x.npy"), np.load(out / f"{row['model']}__ref.npy")
        try:
            y = run_file(data, x)
            row["error"] = float(np.abs(y.reshape(ref.shape) - ref).max())
        except Exception as exc:  # noqa: BLE001
            row["refused"] = f"does not run: {' '.join(str(exc).split())[:100]}"
            del row["path"]
    timed = [r for r in rows if "path" in r]
    for rep in range(repeats):
        rng = np.random.default_rng(rep)
        groups: dict = {}
        for i in rng.permutation(len(timed)):
            r = timed[i]
            g = groups.setdefault(r["model"], {"x": str(out / f"{r['model']}__x.npy"),
                                               "paths": [], "rows": []})  # fmt: skip
            g["paths"].append(r["path"])
            g["rows"].append(int(i))
        log(f"timing {len(timed)} files, {runs} runs each (repeat {rep + 1}/{repeats})")
        job = out / "timing_job.json"
        job.write_text(json.dumps({"groups": groups, "runs": runs}))
        subprocess.run([sys.executable, __file__, "--time", str(job)], check=True, timeout=3600)
        p50s = json.loads(Path(f"{job}.out").read_text())
        for model, g in groups.items():
            for i, p50 in zip(g["rows"], p50s[model], strict=True):
                timed[i].setdefault("p50_runs", []).append(p50)
    for r in timed:
        r["p50"] = statistics.median(r["p50_runs"])


def report(rows: list) -> str:
    from edgelstm.measure.bench import text_table

    table, verdicts = [], []
    for model in dict.fromkeys(r["model"] for r in rows):
        for quant in QUANTS:
            group = [r for r in rows if r["model"] == model and r["quant"] == quant]
            rivals = [r for r in group if "p50" in r and not r["label"].startswith(OURS)]
            best = min(rivals, key=lambda r: r["p50"]) if rivals else None
            for r in group:
                ratio = f"{r['p50'] / best['p50']:.2f}" if best and "p50" in r else "-"
                table.append([
                    model, quant, r["label"] + (f" [{r['note']}]" if r.get("note") else ""),
                    f"{r['p50']:.3f}" if "p50" in r else r.get("refused", "-"),
                    ratio, f"{r['kb']:,.0f}" if "kb" in r else "-",
                    f"{r['error']:.1e}" if "error" in r else "-",
                ])  # fmt: skip
            mine = [r for r in group if "p50" in r and r["label"].startswith(OURS)]
            if mine and best:
                fast = min(mine, key=lambda r: r["p50"])
                verdicts.append(
                    f"{model} {quant}: best edgelstm {fast['p50']:.3f} ms (err "
                    f"{fast['error']:.1e}) vs {best['label']} {best['p50']:.3f} ms (err "
                    f"{best['error']:.1e}) = {fast['p50'] / best['p50']:.2f}"
                    + (" WIN" if fast["p50"] < best["p50"] else " LOSS")
                )
    head = ("model", "quant", "converter", "p50 ms", "x best rival", "KB", "max err")
    skips = [f"skipped {r['label']}: {r['refused']}" for r in rows if r["model"] == "-"]
    return text_table(head, table) + "\n\n" + "\n".join(verdicts + skips)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs, one repeat")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eval", type=int, default=8, help="sequences for the error")
    parser.add_argument("--models", nargs="+", default=[*KERAS_MODELS, "peephole", *TORCH_MODELS])
    parser.add_argument("--out", help="keep the files here (default: a temp dir)")
    parser.add_argument("--json", help="also write every row to this JSON file")
    parser.add_argument("--stage", choices=tuple(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--time", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.time:
        time_job(Path(args.time))
        return 0
    if args.quick:
        args.runs, args.repeats, args.eval = 40, 1, 4
    if args.stage:
        out = Path(args.out)
        result = STAGES[args.stage](out, args.eval, args.models)
        (out / f"stage_{args.stage}.json").write_text(json.dumps(result))
        return 0
    start = time.time()
    out = Path(args.out or tempfile.mkdtemp(prefix="edgelstm-whole-"))
    out.mkdir(parents=True, exist_ok=True)
    rows: list = []
    extra = ["--eval", str(args.eval), "--models", *args.models]
    for stage in STAGES:  # keras3 first: it writes the weights the legacy stage loads
        log(f"stage {stage} (subprocess)")
        result = run_stage(__file__, stage, out, extra, timeout=3600)
        rows += result.get("rows", [])
        for what, why in result.get("skipped", {}).items():
            rows.append({"model": "-", "label": what, "quant": "-", "refused": why})
    try:
        import onnx2tf  # noqa: F401

        note = "installed, not wired in this tool yet"
    except ImportError:
        note = "onnx2tf not installed (not a dependency): pip install onnx2tf"
    measure(out, rows, args.runs, args.repeats)
    print(report(rows))
    print(f"onnx2tf: {note}")
    print(f"LiteRT Interpreter, 1 thread, batch 1, default delegates; p50 = median over "
          f"{args.repeats} fresh processes of {args.runs} interleaved runs; error = max abs vs "
          f"the framework's float output on {args.eval} inputs")  # fmt: skip
    print(f"files in {out}; total {time.time() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
