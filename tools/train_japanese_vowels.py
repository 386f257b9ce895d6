"""Train models/japanese_vowels_lstm.npz: a real, deterministic LSTM speaker classifier.

Why: the compiler's seed features (peepholes, projection, cell clip) must be exercised by a
network that was actually trained on real data, so quantization error shows up as a change
in test accuracy rather than only as a tensor-level difference.

How: a small PyTorch cell written directly in the canonical per-gate form of
:mod:`edgelstm.reference` -- one parameter per TFLite tensor role, named by the role
(``input_to_forget_weights`` [n_cell, n_input], ``recurrent_to_*`` [n_cell, n_output],
``cell_to_*`` peepholes, ``*_gate_bias``, ``projection_weights`` [n_output, n_cell], optional
layer-norm coefficients, CIFG) and the same step equations and clip order. Export is then a
plain copy of the parameters into :class:`edgelstm.LSTMWeights`: no gate-order conversion.
A Dense softmax head reads the last time step (inputs are zero-padded at the end to 29
frames, exactly what the fused op will be fed on a device).

Determinism: fixed seed, one intra-op and one inter-op thread, deterministic algorithms, a
seeded generator for shuffling. Same machine + same torch/numpy versions => identical weights
(``weights_sha256`` in the provenance). Bit-identity across CPUs/BLAS builds is not promised.

After training the saved file is reloaded with :func:`edgelstm.from_npz` and run through
:func:`edgelstm.reference_model` (float64): its test predictions must equal the trained
network's, and the accuracy recorded in the provenance is the reference's.

    python tools/train_japanese_vowels.py [--variant peephole_projection|cifg_layernorm]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from edgelstm import (
    DenseHead,
    LSTMLayer,
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    from_npz,
    reference_model,
    save_npz,
)

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    # The seed features: peepholes + projection + cell clip (TF LSTMCell's feature set).
    "peephole_projection": {
        "spec": {"n_cell": 64, "n_output": 32, "peephole": True, "projection": True,
                 "cell_clip": 4.0},
        "out": "japanese_vowels_lstm.npz",
    },
    # TFLite-only features: coupled input/forget gate and layer normalization.
    "cifg_layernorm": {
        "spec": {"n_cell": 64, "cifg": True, "layer_norm": True, "cell_clip": 4.0},
        "out": "japanese_vowels_cifg_ln_lstm.npz",
    },
}  # fmt: skip


def setup_determinism(seed: int) -> None:
    """Pin every source of run-to-run variation we control (call before building tensors)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    np.random.seed(seed)


def make_cell_class():
    """Build the torch module class lazily so importing this file does not need torch."""
    import torch
    from torch import nn

    from edgelstm.ir.roles import present_weight_roles
    from edgelstm.reference import LAYER_NORM_EPSILON

    activations = {
        "tanh": torch.tanh,
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "linear": lambda v: v,
    }

    class CanonicalLSTM(nn.Module):
        """One LSTM direction whose parameters are the canonical tensor roles, by name.

        Same math and order as :func:`edgelstm.reference.reference`: gates
        ``z = W x + R h (+ peephole * c_prev) [-> LN * coef] + bias``; ``c = f c + i g``;
        cell clip; output gate peeks at the new (clipped) cell; ``m = o * act(c)``;
        projection (+ bias), proj clip.
        """

        def __init__(self, spec: LSTMSpec, generator: torch.Generator) -> None:
            super().__init__()
            self.spec = spec
            self.act = activations[spec.activation]
            self.gates = ("forget", "cell", "output") if spec.cifg else (
                "input", "forget", "cell", "output")  # fmt: skip
            bound = 1.0 / math.sqrt(spec.n_cell)
            params = {}
            for r in present_weight_roles(spec):
                shape = r.shape(spec)
                if r.kind == "ln":
                    init = torch.ones(shape)
                elif r.name == "forget_gate_bias":
                    init = torch.ones(shape)  # the usual forget bias of 1, learned here
                elif r.kind == "bias":
                    init = torch.zeros(shape)
                else:
                    init = (torch.rand(shape, generator=generator) * 2 - 1) * bound
                params[r.name] = nn.Parameter(init)
            self.p = nn.ParameterDict(params)

        def forward(self, x: torch.Tensor, state=None):
            """x [B, T, I] -> (outputs [B, T, P], (h, c))."""
            spec, p = self.spec, self.p
            batch, steps, _ = x.shape
            if state is None:
                h = x.new_zeros(batch, spec.n_output)
                c = x.new_zeros(batch, spec.n_cell)
            else:
                h, c = state
            w_x = torch.cat([p[f"input_to_{g}_weights"] for g in self.gates])
            w_h = torch.cat([p[f"recurrent_to_{g}_weights"] for g in self.gates])
            xw = (x @ w_x.T).split(spec.n_cell, dim=-1)  # per gate [B, T, N]
            xw = dict(zip(self.gates, xw, strict=True))
            outs = []

            def finish(g: str, z: torch.Tensor) -> torch.Tensor:
                if spec.layer_norm:
                    mean = z.mean(-1, keepdim=True)
                    var = ((z - mean) ** 2).mean(-1, keepdim=True)
                    z = (z - mean) / torch.sqrt(var + LAYER_NORM_EPSILON)
                    z = z * p[f"{g}_layer_norm_coefficients"]
                return z + p[f"{g}_gate_bias"]

            for t in range(steps):
                hw = dict(zip(self.gates, (h @ w_h.T).split(spec.n_cell, dim=-1), strict=True))
                pre = {g: xw[g][:, t] + hw[g] for g in self.gates}
                if spec.peephole:
                    for g in ("input", "forget"):
                        if g in pre:
                            pre[g] = pre[g] + c * p[f"cell_to_{g}_weights"]
                f = torch.sigmoid(finish("forget", pre["forget"]))
                i = 1.0 - f if spec.cifg else torch.sigmoid(finish("input", pre["input"]))
                g_ = self.act(finish("cell", pre["cell"]))
                c = f * c + i * g_
                if spec.cell_clip > 0:
                    c = c.clamp(-spec.cell_clip, spec.cell_clip)
                zo = pre["output"]
                if spec.peephole:
                    zo = zo + c * p["cell_to_output_weights"]
                o = torch.sigmoid(finish("output", zo))
                m = o * self.act(c)
                if spec.projection:
                    m = m @ p["projection_weights"].T
                    if spec.projection_bias:
                        m = m + p["projection_bias"]
                    if spec.proj_clip > 0:
                        m = m.clamp(-spec.proj_clip, spec.proj_clip)
                h = m
                outs.append(h)
            return torch.stack(outs, dim=1), (h, c)

        def to_weights(self) -> LSTMWeights:
            """The canonical weights: the parameters as they are (float32)."""
            tensors = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.p.items()}
            return LSTMWeights(self.spec, tensors)

    return CanonicalLSTM


def model_digest(model: LSTMModel) -> str:
    """``weights_sha256``: the numbers of the model, independent of the file format.

    sha256 over each direction's :meth:`LSTMWeights.digest` (spec + tensors) in layer order,
    then the head's activation, kernel and bias as little-endian float32. Model options
    (return_sequences, ...) and the provenance are not part of it.
    """
    h = hashlib.sha256()
    for v in model.walk():
        h.update(f"layer{v.k}.{v.d}:{v.weights.digest()};".encode())
    if model.head is not None:
        h.update(f"head:{model.head.activation};".encode())
        for tensor in (model.head.kernel, model.head.bias):
            arr = np.ascontiguousarray(tensor, dtype="<f4")
            h.update(f"{arr.shape};".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train(args: argparse.Namespace) -> None:
    setup_determinism(args.seed)
    import torch
    from torch import nn

    data = np.load(args.data, allow_pickle=False)
    x_train = torch.from_numpy(data["x_train"])
    y_train = torch.from_numpy(data["y_train"])
    x_test, y_test = data["x_test"], data["y_test"]
    n_classes = int(y_train.max()) + 1
    variant = VARIANTS[args.variant]
    spec = LSTMSpec(n_input=x_train.shape[-1], **variant["spec"])

    gen = torch.Generator().manual_seed(args.seed)
    cell = make_cell_class()(spec, gen)
    head = nn.Linear(spec.n_output, n_classes)
    with torch.no_grad():
        bound = 1.0 / math.sqrt(spec.n_output)
        head.weight.copy_((torch.rand(head.weight.shape, generator=gen) * 2 - 1) * bound)
        head.bias.zero_()
    params = list(cell.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)

    drop = nn.Dropout(args.dropout)

    def logits(x: torch.Tensor) -> torch.Tensor:
        out, _ = cell(x)
        return head(drop(out[:, -1]))

    start = time.perf_counter()
    n = len(x_train)
    for epoch in range(args.epochs):
        drop.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for k in range(0, n, args.batch):
            idx = perm[k : k + args.batch]
            xb = x_train[idx]
            if args.noise > 0:  # small input noise: the 270 training series are few
                xb = xb + args.noise * torch.randn(xb.shape, generator=gen)
            loss = loss_fn(logits(xb), y_train[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            total += loss.detach().item() * len(idx)
        sched.step()
        if (epoch + 1) % args.log_every == 0 or epoch + 1 == args.epochs:
            drop.eval()
            with torch.no_grad():
                acc = (logits(torch.from_numpy(x_test)).argmax(-1).numpy() == y_test).mean()
            print(f"epoch {epoch + 1:4d} loss {total / n:.4f} test acc {acc:.4f}", flush=True)
    train_seconds = time.perf_counter() - start

    cell.eval()
    drop.eval()
    with torch.no_grad():
        torch_pred = logits(torch.from_numpy(x_test)).argmax(-1).numpy()
    head_np = DenseHead(
        head.weight.detach().numpy().astype(np.float32),
        head.bias.detach().numpy().astype(np.float32),
        "softmax",
    )
    model = LSTMModel((LSTMLayer(cell.to_weights()),), head=head_np, return_sequences=False)
    # The recorded accuracy is the float64 reference's on the exported weights.
    ref_pred = reference_model(model, x_test).output.argmax(-1)
    if not np.array_equal(ref_pred, torch_pred):
        diff = np.flatnonzero(ref_pred != torch_pred)
        raise SystemExit(f"reference and trained network disagree on test cases {diff.tolist()}")
    correct = int((ref_pred == y_test).sum())
    provenance = {
        "source": "tools/train_japanese_vowels.py",
        "variant": args.variant,
        "task": "JapaneseVowels speaker classification (9 classes), last-step softmax",
        "dataset": "models/japanese_vowels.npz",
        "dataset_sha256": file_sha256(args.data),
        "input": "x = (raw LPC cepstrum - norm_mean) / norm_std, zero-padded at the end to 29",
        "norm_mean": [float(v) for v in data["norm_mean"]],
        "norm_std": [float(v) for v in data["norm_std"]],
        "seed": args.seed,
        "epochs": args.epochs,
        "batch": args.batch,
        "lr": args.lr,
        "input_noise": args.noise,
        "optimizer": "AdamW, cosine LR, grad-norm clip 1, label smoothing 0.05",
        "weight_decay": args.weight_decay,
        "dropout": args.dropout,
        "n_test": len(y_test),
        "test_correct": correct,
        "test_accuracy": correct / len(y_test),
        "accuracy_by": "edgelstm.reference_model (float64) on the saved weights",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    provenance["weights_sha256"] = model_digest(model)
    model = LSTMModel(model.layers, model.head, return_sequences=False, provenance=provenance)
    out = args.out or args.data.parent / variant["out"]
    save_npz(model, out)

    reloaded = from_npz(out)
    again = reference_model(reloaded, x_test).output.argmax(-1)
    assert np.array_equal(again, ref_pred), "reloaded model predicts differently"
    assert model_digest(reloaded) == provenance["weights_sha256"], "digest changed on reload"
    print(f"{model.describe()}")
    print(
        f"test accuracy {correct}/{len(y_test)} = {correct / len(y_test):.4f} "
        f"(reference == trained network on all {len(y_test)} cases)"
    )
    print(f"training took {train_seconds:.1f} s; wrote {out} ({out.stat().st_size} bytes)")
    print(f"weights_sha256={provenance['weights_sha256']}")
    print(json.dumps({"weights_sha256": provenance["weights_sha256"], "acc": correct}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="peephole_projection")
    parser.add_argument("--data", type=Path, default=ROOT / "models" / "japanese_vowels.npz")
    parser.add_argument("--out", type=Path, help="default: models/<variant's file name>")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--batch", type=int, default=27)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--noise", type=float, default=0.1, help="input noise std (0 = none)")
    parser.add_argument("--weight-decay", type=float, default=5e-2)
    parser.add_argument("--dropout", type=float, default=0.2, help="on the head's input")
    parser.add_argument("--log-every", type=int, default=10)
    train(parser.parse_args())


if __name__ == "__main__":
    main()
