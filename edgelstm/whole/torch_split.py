"""A whole PyTorch module -> one .tflite: litert-torch around the LSTMs, edgelstm for each LSTM.

The module is traced with ``torch.fx`` (``nn.LSTM`` stays one call) and cut at every LSTM
call into a chain: prefix -> LSTM -> middle -> LSTM -> ... -> suffix. Each non-LSTM segment is
converted by litert-torch (an optional extra; the real converter, not a re-implementation),
each ``nn.LSTM`` by :func:`edgelstm.targets.tflite.to_tflite` (fused
UNIDIRECTIONAL_SEQUENCE_LSTM, projection included), and
:func:`edgelstm.targets.tflite.link.link_chain` joins the parts into one flatbuffer.

Only chains split cleanly: a module whose layers branch around an LSTM (a skip connection),
that uses the LSTM's final states ``(h_n, c_n)``, passes initial states, or has several
inputs/outputs is refused with the reason and the ONNX way out (:mod:`.torch_module`).
Shapes are fixed to the example input (litert-torch converts static shapes). Float,
dynamic int8 (int8 weights, float activations) or full int8 (:mod:`.torch_int8`).
"""

from __future__ import annotations

import contextlib
import io
import operator
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgelstm.errors import CalibrationError, MissingDependencyError, SpecError, UnsupportedError
from edgelstm.ir.options import CompileOptions, Quantize
from edgelstm.whole.segments import WHOLE_INT16X8
from edgelstm.whole.torch_int8 import LITERT_TORCH_EXTRA

ONNX_WAY_OUT = (
    "or convert to ONNX (edgelstm.from_torch_module(module, x) / -o model.onnx), which "
    "takes any graph around the LSTMs"
)


_IMPORT_NOISE = ("torchao", "torch.utils._pytree")
"""Loggers that warn while litert-torch imports (torchao's CUDA-only kernels missing on a CPU
wheel, a torch deprecation inside torchao): noise to a user, silenced for the import only."""


def _litert_torch() -> Any:
    import logging

    loggers = [logging.getLogger(name) for name in _IMPORT_NOISE]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        import litert_torch
    except ImportError:
        raise MissingDependencyError(
            "a whole PyTorch module to TFLite needs litert-torch to convert the layers around "
            f"the LSTMs: {LITERT_TORCH_EXTRA} (litert-torch 0.10, installs with torch 2.13); "
            + ONNX_WAY_OUT
        ) from None
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    return litert_torch


@dataclass
class TorchPart:
    """One link of the chain: a traced non-LSTM segment, or one ``nn.LSTM``."""

    kind: str  # "torch" or "lstm"
    module: Any  # a torch.fx.GraphModule, or the nn.LSTM
    name: str  # what the user would recognise: the LSTM's path or the segment's first op


def _refuse(reason: str) -> UnsupportedError:
    return UnsupportedError("tflite", f"{reason}; {ONNX_WAY_OUT}")


def split_torch(module: Any) -> list[TorchPart]:
    """Cut ``module`` at its ``nn.LSTM`` calls into a chain of parts (refused if not a chain)."""
    import torch
    import torch.fx

    try:
        traced = torch.fx.symbolic_trace(module)
    except Exception as exc:  # noqa: BLE001 - fx raises many kinds on dynamic Python
        raise _refuse(
            f"torch.fx cannot trace the module into one graph ({type(exc).__name__}: "
            f"{str(exc).strip()[:200]})"
        ) from None
    graph = traced.graph
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise _refuse(f"the module takes {len(inputs)} inputs; the TFLite split takes one")
    output = next(n for n in graph.nodes if n.op == "output")
    if not isinstance(output.args[0], torch.fx.Node):
        raise _refuse("the module returns several values; the TFLite split returns one tensor")
    sources = [inputs[0]]
    lstms = []
    for node in list(graph.nodes):
        if node.op == "call_module" and isinstance(
            traced.get_submodule(node.target), torch.nn.LSTM
        ):
            _last_step_for_final_h(graph, node, traced.get_submodule(node.target))
            sources.append(_lstm_output(node, traced))
            lstms.append(node)
    if not lstms:
        raise _refuse("the module holds no nn.LSTM call; convert it with litert-torch directly")
    sinks = [lstm.args[0] for lstm in lstms] + [output.args[0]]
    owner = _owners(graph, sources, set(lstms))
    parts = []
    for k, (source, sink) in enumerate(zip(sources, sinks, strict=True)):
        if owner.get(sink) not in (k, None) or (sink is not source and owner.get(sink) is None):
            raise _refuse(f"the input of segment {k} ({sink.name!r}) does not come from its source")
        if sink is not source:
            parts.append(TorchPart("torch", _segment(traced, owner, k, source, sink), sink.name))
        if k < len(lstms):
            lstm = lstms[k]
            parts.append(TorchPart("lstm", traced.get_submodule(lstm.target), str(lstm.target)))
    return parts


def _getitems(node: Any, index: int) -> list[Any]:
    return [u for u in node.users if u.target is operator.getitem and u.args[1] == index]


def _last_step_for_final_h(graph: Any, node: Any, lstm: Any) -> None:
    """``h_n[-1]`` of a one-direction LSTM is its output's last step: read it from there.

    The classifier pattern ``_, (h, _) = lstm(x); fc(h[-1])``: for a one-direction LSTM
    run over full-length sequences from zero state, the last layer's final h equals
    ``y[:, -1]`` (``y[-1]`` time-major) exactly, so the graph is rewritten to read that and
    the chain carries only ``y``. Other uses of ``(h_n, c_n)`` stay (and are refused).
    """
    if lstm.bidirectional:
        return
    last = {-1, lstm.num_layers - 1}
    uses = [
        use
        for states in _getitems(node, 1)
        for h_n in _getitems(states, 0)
        for use in list(h_n.users)
        if use.target is operator.getitem and use.args[1] in last
    ]
    if not uses:
        return
    found = _getitems(node, 0)
    with graph.inserting_after(node):
        y = found[0] if found else graph.call_function(operator.getitem, (node, 0))
    step = (slice(None), -1) if lstm.batch_first else -1
    with graph.inserting_after(y):
        tail = graph.call_function(operator.getitem, (y, step))
    for use in uses:
        use.replace_all_uses_with(tail)
        graph.erase_node(use)


def _lstm_output(node: Any, traced: Any) -> Any:
    """The node holding the LSTM's output sequence; refuse other uses of the call."""
    if len(node.args) > 1 or node.kwargs:
        raise _refuse(
            f"nn.LSTM {node.target!r} is given initial states; the TFLite split starts every "
            "LSTM from zeros"
        )
    outputs = []
    for user in node.users:
        index = user.args[1] if user.target is operator.getitem else None
        if index == 0:
            outputs.append(user)
        elif user.target is operator.getitem and not _used(user):
            continue
        else:
            raise _refuse(
                f"the module uses the final states (h_n, c_n) of nn.LSTM {node.target!r} beyond "
                "h_n[-1] of a one-direction LSTM; the TFLite split carries only its output "
                "sequence"
            )
    if len(outputs) != 1:
        raise _refuse(f"nn.LSTM {node.target!r}: its output is read {len(outputs)} times")
    return outputs[0]


def _used(node: Any) -> bool:
    return any(user.op != "output" and (_used(user) or user.users) for user in node.users) or any(
        user.op == "output" for user in node.users
    )


def _owners(graph: Any, sources: list[Any], lstms: set[Any]) -> dict[Any, int | None]:
    """Which segment each node belongs to: the one source it depends on (None: constant)."""
    index = {s: k for k, s in enumerate(sources)}
    owner: dict[Any, int | None] = {}
    for node in graph.nodes:
        if node in index:
            owner[node] = index[node]
            continue
        if node.op in ("placeholder", "output") or node in lstms or node.op == "get_attr":
            owner[node] = None
            continue
        if node.target is operator.getitem and node.args[0] in lstms:
            owner[node] = None  # (h_n, c_n) of an LSTM call: checked unused by _lstm_output
            continue
        found = {owner.get(a) for a in node.all_input_nodes} - {None}
        if len(found) > 1:
            raise _refuse(
                f"{node.name!r} reads values from both sides of an LSTM (a skip connection or "
                "branch): the module is not a chain"
            )
        owner[node] = found.pop() if found else None
    return owner


def _segment(traced: Any, owner: dict[Any, int | None], k: int, source: Any, sink: Any) -> Any:
    """The nodes of segment ``k`` as a GraphModule from ``source`` to ``sink``."""
    import torch.fx

    graph = torch.fx.Graph()
    env = {source: graph.placeholder("x")}
    needed = _ancestors(sink, stop=source)
    for node in traced.graph.nodes:
        if node not in needed or node is source:
            continue
        if owner.get(node) not in (k, None) or node.op in ("placeholder", "output"):
            raise _refuse(f"segment {k} reads {node.name!r} from another segment")
        env[node] = graph.node_copy(node, lambda n: env[n])
    graph.output(env[sink])
    return torch.fx.GraphModule(traced, graph)


def _ancestors(node: Any, stop: Any) -> set[Any]:
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n is not stop:
            todo.extend(n.all_input_nodes)
    return seen


def lstm_part(part: TorchPart, value: Any, quantize: Quantize) -> tuple[Any, CompileOptions]:
    """The canonical model of an ``nn.LSTM`` part and its options, with the batch and steps
    fixed to ``value`` (the part's input, as the module's ``batch_first`` lays it out)."""
    from edgelstm.importers.torch_lstm import from_torch

    batch, steps = value.shape[:2]
    if not part.module.batch_first:
        batch, steps = steps, batch
    fixed = CompileOptions(batch=int(batch), seq_len=int(steps), quantize=quantize)
    return from_torch(part.module), fixed


@contextlib.contextmanager
def _quiet(litert_torch: Any) -> Iterator[None]:
    """litert-torch prints progress lines and warnings: not edgelstm's output."""
    config = getattr(getattr(litert_torch, "_config", None), "config", None)
    previous = getattr(config, "show_progress", None)
    if previous is not None:
        config.show_progress = False
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        if previous is not None:
            config.show_progress = previous


def _dynamic(segment: bytes) -> bytes:
    """A litert-torch segment with int8 weights and float activations (ai-edge-quantizer, which
    litert-torch installs: its dynamic recipe, per-channel int8 weights)."""
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError:
        raise MissingDependencyError(
            f"dynamic int8 of a whole PyTorch module needs ai-edge-quantizer: {LITERT_TORCH_EXTRA}"
        ) from None
    q = quantizer.Quantizer(segment)
    q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    return bytes(q.quantize().quantized_model)


def torch_to_tflite(
    module: Any, example_input: Any, options: CompileOptions | None = None
) -> bytes:
    """One .tflite of a chain-like ``nn.Module`` (eval mode): LSTMs fused, the rest litert-torch.

    ``example_input``: the one input tensor; the file's shapes are fixed to it.
    ``quantize="dynamic"``: ai-edge-quantizer's dynamic int8 for the litert-torch segments,
    edgelstm's hybrid fused op for the LSTMs (float boundaries). ``quantize="int8"`` with
    ``calibration`` = the module's inputs (``[N, *x.shape[1:]]`` or ``[N, *x.shape]``, see
    :func:`.torch_int8.calibration_batches`): full integer, int8 between every part
    (:mod:`.torch_int8`); the model's I/O float, or int8 with ``Int8Options(io=True)``.
    """
    import torch

    from edgelstm.targets.tflite import to_tflite
    from edgelstm.targets.tflite.link import link_chain

    options = options or CompileOptions()
    if not isinstance(example_input, torch.Tensor):
        raise SpecError(
            f"example_input: expected one torch.Tensor, found {type(example_input).__name__}"
        )
    calibration = None
    if options.quantize == "int16x8":
        raise UnsupportedError("tflite", WHOLE_INT16X8)
    if options.quantize == "int8":  # checked before litert-torch's slow import
        from edgelstm.whole.torch_int8 import calibration_batches, int8_parts

        calibration = calibration_batches(options.calibration, example_input)
    litert_torch = _litert_torch()
    was_training = module.training
    module.eval()
    try:
        parts = split_torch(module)
        if calibration is not None:

            def convert(segment: Any, value: Any) -> bytes:
                with _quiet(litert_torch):
                    return bytes(litert_torch.convert(segment, (value,)).model_content())

            return link_chain(int8_parts(parts, calibration, example_input, options, convert))
        blobs = []
        value = example_input
        for part in parts:
            with torch.no_grad():
                if part.kind == "lstm":
                    model, fixed = lstm_part(part, value, options.quantize)
                    blobs.append(to_tflite(model, fixed))
                    value = part.module(value)[0]
                else:
                    part.module.eval()
                    with _quiet(litert_torch):
                        converted = litert_torch.convert(part.module, (value,))
                        segment = bytes(converted.model_content())
                        if options.quantize == "dynamic":
                            segment = _dynamic(segment)
                    blobs.append(segment)
                    value = part.module(value)
    except (UnsupportedError, SpecError, MissingDependencyError, CalibrationError):
        raise
    except Exception as exc:  # noqa: BLE001 - litert-torch raises many kinds
        raise UnsupportedError(
            "tflite",
            f"litert-torch could not convert a segment ({type(exc).__name__}: "
            f"{str(exc).strip()[:200]}); {ONNX_WAY_OUT}",
        ) from None
    finally:
        module.train(was_training)
    return link_chain(blobs)
