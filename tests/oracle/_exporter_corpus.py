"""Real exporter output, generated at test time (nothing committed): torch.onnx (both
exporters), tf2onnx, hand-built If/Loop graphs, onnxruntime's DynamicQuantizeLSTM.

Each case is (onnx path, the LSTM chain to compile, the source framework's output for the
chain's X as a function, or None). Not a test module.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass
class Case:
    path: Path
    x: dict[str, np.ndarray]  # feeds of the original graph
    source: Callable[[np.ndarray], np.ndarray] | None = None  # X of the chain -> its Y


def torch_cases(root: Path) -> dict[str, Case]:
    """torch.onnx.export, legacy and dynamo x {1 layer, 2-layer bidi batch_first,
    Linear->LSTM->Linear} x {zero states, h0/c0 as inputs}."""
    import torch

    torch.manual_seed(0)

    class LinLstmLin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(5, 6), torch.nn.Linear(7, 3)
            self.lstm = torch.nn.LSTM(6, 7, batch_first=True)

        def forward(self, x, *hc):
            return self.b(self.lstm(self.a(x), hc or None)[0])

    class Plain(torch.nn.Module):
        def __init__(self, lstm) -> None:
            super().__init__()
            self.lstm = lstm

        def forward(self, x, *hc):
            return self.lstm(x, hc or None)

    makers = {
        "one": lambda: Plain(torch.nn.LSTM(5, 7)),
        "bidi2": lambda: Plain(torch.nn.LSTM(5, 7, 2, bidirectional=True, batch_first=True)),
        "linlstmlin": LinLstmLin,
    }
    out = {}
    for name, make in makers.items():
        module = make().eval()
        lstm = module.lstm
        layers = lstm.num_layers * (2 if lstm.bidirectional else 1)
        x = torch.randn(3, 4, 5)
        batch = 3 if lstm.batch_first else 4
        for states in (False, True):
            hc = (torch.zeros(layers, batch, 7), torch.zeros(layers, batch, 7)) if states else ()
            names = ["x", "h0", "c0"] if states else ["x"]

            def source(x_tm, lstm=lstm):  # the chain's X is time-major [T, B, I]
                xin = torch.from_numpy(x_tm)
                with torch.no_grad():
                    y = lstm(xin.transpose(0, 1) if lstm.batch_first else xin)[0]
                y = y.transpose(0, 1) if lstm.batch_first else y
                return y.numpy()

            for dynamo in (False, True):
                tag = (
                    f"torch_{'dynamo' if dynamo else 'legacy'}_{name}_{'h0' if states else 'zero'}"
                )
                path = root / f"{tag}.onnx"
                with warnings.catch_warnings(), _quiet():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(module, (x, *hc), str(path), dynamo=dynamo, input_names=names)
                feeds = {
                    "x": x.numpy(),
                    **({"h0": hc[0].numpy(), "c0": hc[1].numpy()} if states else {}),
                }
                out[tag] = Case(path, feeds, source)
    return out


class _quiet:
    """Silence the dynamo exporter's progress prints (stdout)."""

    def __enter__(self):
        import contextlib
        import io

        self._cm = contextlib.redirect_stdout(io.StringIO())
        return self._cm.__enter__()

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def tf2onnx_cases(root: Path) -> dict[str, Case]:
    """tf2onnx of tf_keras LSTM / Bidirectional LSTM / LSTM + Dense."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf2onnx
    import tf_keras as k

    k.utils.set_random_seed(0)
    models = {
        "lstm": k.Sequential([k.layers.Input((6, 4)), k.layers.LSTM(5, return_sequences=True)]),
        "bidi": k.Sequential(
            [
                k.layers.Input((6, 4)),
                k.layers.Bidirectional(k.layers.LSTM(5, return_sequences=True)),
            ]
        ),
        "lstm_dense": k.Sequential(
            [k.layers.Input((6, 4)), k.layers.LSTM(5, return_sequences=True), k.layers.Dense(3)]
        ),
    }
    out = {}
    x = np.random.default_rng(0).normal(size=(2, 6, 4)).astype(np.float32)
    for name, m in models.items():
        spec = (tf.TensorSpec((None, 6, 4), tf.float32, name="x"),)
        with _quiet():
            proto, _ = tf2onnx.convert.from_keras(m, input_signature=spec, opset=17)
        path = root / f"tf2onnx_{name}.onnx"
        onnx.save(proto, str(path))
        rec = m.layers[0]

        def source(x_tm, rec=rec):  # time-major X -> time-major Y, directions merged
            return np.transpose(rec(np.transpose(x_tm, (1, 0, 2))).numpy(), (1, 0, 2))

        out[f"tf2onnx_{name}"] = Case(path, {proto.graph.input[0].name: x}, source)
    return out


def _lstm_node(rng, tag: str, i: int, h: int) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    inits = [
        numpy_helper.from_array(rng.uniform(-0.5, 0.5, s).astype(np.float32), f"{w}{tag}")
        for w, s in (("W", (1, 4 * h, i)), ("R", (1, 4 * h, h)), ("B", (1, 8 * h)))
    ]
    node = helper.make_node(
        "LSTM",
        ["X" + tag, f"W{tag}", f"R{tag}", f"B{tag}"],
        [f"Y{tag}"],
        hidden_size=h,
        name=f"lstm{tag}",
    )
    return node, inits


def control_flow_cases(root: Path) -> dict[str, Case]:
    """LSTMs inside If branches (one per branch) and a Loop body (scan output)."""
    rng = np.random.default_rng(3)
    t, b, i, h = 5, 2, 3, 4
    then, then_inits = _lstm_node(rng, "_then", i, h)
    other, other_inits = _lstm_node(rng, "_else", i, h)
    then.input[0] = other.input[0] = "x"
    branch = []
    for node, inits, y in ((then, then_inits, "Y_then"), (other, other_inits, "Y_else")):
        outv = helper.make_tensor_value_info(y, TensorProto.FLOAT, None)
        branch.append(helper.make_graph([node], f"g{y}", [], [outv], inits))
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=branch[0], else_branch=branch[1])],
        "if_lstm",
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [t, b, i]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    cases = {}
    path = root / "if_lstm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = rng.normal(size=(t, b, i)).astype(np.float32)
    cases["if_lstm"] = Case(path, {"cond": np.array(True), "x": x})
    body_node, body_inits = _lstm_node(rng, "_body", i, h)
    body_node.input[0] = "x"  # an outer-scope name
    body = helper.make_graph(
        [body_node, helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [
            helper.make_tensor_value_info("iter", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("Y_body", TensorProto.FLOAT, None),
        ],
        body_inits,
    )
    loop = helper.make_node("Loop", ["n", ""], ["ys"], body=body, name="loop")
    graph = helper.make_graph(
        [loop],
        "loop_lstm",
        [
            helper.make_tensor_value_info("n", TensorProto.INT64, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [t, b, i]),
        ],
        [helper.make_tensor_value_info("ys", TensorProto.FLOAT, None)],
    )
    path = root / "loop_lstm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    cases["loop_lstm"] = Case(path, {"n": np.array(2, np.int64), "x": x})
    return cases


def with_outputs(path: Path, names: list[str]) -> bytes:
    """The original graph with extra (intermediate) tensors exposed as graph outputs."""
    model = onnx.load(str(path))
    have = {o.name for o in model.graph.output}
    for name in names:
        if name not in have:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return model.SerializeToString()
