"""A whole PyTorch module -> one ONNX model: torch.onnx exports it, edgelstm takes its LSTMs.

One path: ``torch.onnx.export`` (the TorchScript-based exporter by default; ``dynamo=True``
for the torch.export-based one, which needs onnxscript) writes the module, then
:func:`edgelstm.whole.keras_onnx.rewrite_exported` runs edgelstm's rewrite over it: every
ONNX ``LSTM`` node becomes edgelstm's exact lowering, everything else stays torch's export.

``nn.LSTM(proj_size>0)`` has no ONNX ``LSTM`` form (the op has no projection): the legacy
exporter refuses it and the dynamo exporter writes a wrong graph. So during export each one
is a placeholder that exports as one node, replaced afterwards by edgelstm's exact composite
of the same ``nn.LSTM`` (:mod:`.torch_splice`), with either exporter. The user's module is
restored afterwards (and put back in its training mode).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from edgelstm.errors import MissingDependencyError, SpecError, UnsupportedError
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.onnx import OPSET
from edgelstm.whole.keras_onnx import EXPORT_EXTRA, _check_options, rewrite_exported
from edgelstm.whole.torch_splice import restore, splice_all, swap_projections


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "converting a PyTorch module needs PyTorch: pip install 'edgelstm[torch]'"
        ) from None
    return torch


def _as_args(torch: Any, example_input: Any) -> tuple[Any, ...]:
    """``example_input`` as the tuple of positional arguments torch.onnx.export takes."""
    items = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    args = []
    for k, given in enumerate(items):
        item = torch.from_numpy(given) if isinstance(given, np.ndarray) else given
        if not isinstance(item, torch.Tensor):
            raise SpecError(
                f"example_input[{k}]: expected a torch.Tensor or numpy array, "
                f"found {type(item).__name__}"
            )
        args.append(item)
    return tuple(args)


def from_torch_module(
    module: Any,
    example_input: Any,
    options: CompileOptions | None = None,
    *,
    dynamo: bool = False,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: dict[str, Any] | None = None,
    dynamic_shapes: Any = None,
    strict: bool = True,
) -> onnx.ModelProto:
    """Convert a whole ``nn.Module`` holding ``nn.LSTM`` layers to ONNX (eval mode).

    ``module`` may also be a ``torch.export.ExportedProgram`` or a path to a ``.pt2`` file
    (``torch.export.save``): those go through the dynamo exporter (``example_input`` is
    then unused and may be None; a projection LSTM in such a program is refused, with the
    reason: the program already holds torch's decomposition of it).
    ``example_input``: a tensor (or tuple of tensors / numpy arrays) the module is traced
    with. Shapes are fixed to it unless ``dynamic_axes`` (legacy exporter, e.g.
    ``{"input": {0: "batch"}}``) or ``dynamic_shapes`` (dynamo) say otherwise — torch's own
    parameters, passed through. ``options.quantize``: "none" or "dynamic". ``strict``
    refuses an LSTM the rewrite could not take (``False``: keep torch's node, warn).
    """
    torch = _torch()
    options = _check_options(options)
    program = _exported_program(torch, module)
    if program is not None:
        proto = _export(torch, program, (), True, input_names, output_names, None, dynamic_shapes)
        return _finish(torch, proto, options, [], True, strict)
    if not isinstance(module, torch.nn.Module):
        raise SpecError(
            "module: expected a torch.nn.Module, a torch.export.ExportedProgram or a .pt2 "
            f"path, found {type(module).__name__}"
        )
    args = _as_args(torch, example_input)
    input_names = list(input_names or _default_names("input", len(args)))
    was_training = module.training
    module.eval()
    swapped = swap_projections(torch, module, dynamo)
    try:
        proto = _export(
            torch,
            module,
            args,
            dynamo,
            input_names,
            output_names,
            dynamic_axes,
            dynamic_shapes,
            placeholders=bool(swapped),
        )
    finally:
        restore(swapped)
        module.train(was_training)
    return _finish(torch, proto, options, [s for *_, s in swapped if s.called], dynamo, strict)


def _finish(
    torch: Any,
    proto: onnx.ModelProto,
    options: CompileOptions,
    swaps: list[Any],
    dynamo: bool,
    strict: bool,
) -> onnx.ModelProto:
    """Splice the projection LSTMs' lowering in, then rewrite the rest (one path)."""
    spliced, weights = splice_all(proto, swaps, options)
    exporter = f"torch.onnx ({'dynamo' if dynamo else 'TorchScript'}) torch {torch.__version__}"
    return rewrite_exported(
        proto,
        options,
        exporter=exporter,
        strict=strict,
        alone="edgelstm.from_torch(module.<lstm>) (eval-mode nn.LSTM)",
        spliced=spliced,
        spliced_weights=frozenset(weights),
    )


def _exported_program(torch: Any, module: Any) -> Any:
    """The ExportedProgram ``module`` is or names (a ``.pt2`` path), else None."""
    import os

    if isinstance(module, (str, os.PathLike)):
        path = os.fspath(module)
        if not path.endswith(".pt2"):
            raise SpecError(f"module: a path must be a torch.export .pt2 file, found {path!r}")
        try:
            return torch.export.load(path)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
            from edgelstm.errors import ModelFileError

            raise ModelFileError(
                f"{path}: not a readable torch.export program ({type(exc).__name__}: "
                f"{str(exc).strip()[:200]})"
            ) from None
    return module if isinstance(module, torch.export.ExportedProgram) else None


def _default_names(stem: str, count: int) -> list[str]:
    return [stem] if count == 1 else [f"{stem}{k}" for k in range(count)]


def _export(
    torch: Any,
    module: Any,
    args: tuple[Any, ...],
    dynamo: bool,
    input_names: Sequence[str] | None,
    output_names: Sequence[str] | None,
    dynamic_axes: dict[str, Any] | None,
    dynamic_shapes: Any,
    *,
    placeholders: bool = False,
) -> onnx.ModelProto:
    """torch.onnx.export at edgelstm's opset; failures are refused with torch's reason."""
    if dynamo:
        try:
            import onnxscript  # noqa: F401 - the dynamo exporter needs it
        except ImportError:
            raise MissingDependencyError(
                f"torch.onnx.export(dynamo=True) needs onnxscript: {EXPORT_EXTRA}; or use "
                "dynamo=False (the default)"
            ) from None
    kwargs: dict[str, Any] = {}
    if input_names is not None:
        kwargs["input_names"] = list(input_names)
    if output_names is not None:
        kwargs["output_names"] = list(output_names)
    if dynamo:  # its own opset (18+): edgelstm's lowering is converted to it
        kwargs.update(dynamo=True, dynamic_shapes=dynamic_shapes, verbose=False)
        if placeholders:
            from edgelstm.whole.torch_splice import translation_table

            kwargs["custom_translation_table"] = translation_table(torch)
    else:  # edgelstm's opset: the lowering is inlined as emitted
        kwargs.update(dynamo=False, dynamic_axes=dynamic_axes, opset_version=OPSET)
    buffer = io.BytesIO()
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the dynamo exporter logs warnings about torchvision etc.
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, None if dynamo else buffer, **kwargs)
    except UnsupportedError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch's exporters raise many kinds
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise UnsupportedError(
            "onnx",
            f"torch.onnx.export could not export the module ({type(exc).__name__}: {text}); "
            f"try dynamo={not dynamo}, or compile the LSTM alone "
            "(edgelstm.from_torch(module.lstm))",
        ) from None
    finally:
        logger.setLevel(level)
    if dynamo:
        return program.model_proto
    return onnx.load_model_from_string(buffer.getvalue())


class TorchConverter:
    """``tf.lite.TFLiteConverter``'s verbs for a PyTorch module.

    ``TorchConverter.from_module(module, example_input)``; ``optimizations`` (any entry, e.g.
    ``tf.lite.Optimize.DEFAULT`` or "dynamic") asks for dynamic int8, and with a
    ``representative_dataset`` (samples of the module's input, as TensorFlow's) for full
    int8 (.tflite only); ``inference_input_type`` / ``inference_output_type`` ``tf.int8`` /
    ``np.int8`` (both) give the file int8 I/O. :meth:`convert` returns the .tflite bytes
    (litert-torch around edgelstm's fused LSTMs) and :meth:`to_onnx` the ONNX model.
    ``dynamo``, ``input_names``, ``output_names`` and ``dynamic_axes`` are torch.onnx.export's
    (ONNX only).
    """

    def __init__(self, module: Any, example_input: Any) -> None:
        self.module = module
        self.example_input = example_input
        self.optimizations: list[Any] = []
        self.representative_dataset: Any = None
        self.inference_input_type: Any = None
        self.inference_output_type: Any = None
        self.dynamo = False
        self.strict = True
        self.input_names: Sequence[str] | None = None
        self.output_names: Sequence[str] | None = None
        self.dynamic_axes: dict[str, Any] | None = None

    @classmethod
    def from_module(cls, module: Any, example_input: Any) -> TorchConverter:
        return cls(module, example_input)

    def _options(self) -> CompileOptions:
        from edgelstm.ir.options import Int8Options
        from edgelstm.whole.converter import _samples, _type_name

        full = bool(self.optimizations) and self.representative_dataset is not None
        types = {
            _type_name(self.inference_input_type, "inference_input_type"),
            _type_name(self.inference_output_type, "inference_output_type"),
        }
        if "int8" in types and (not full or types != {"int8"}):
            raise SpecError(
                "TorchConverter: int8 inference types need full-integer quantization "
                "(optimizations and a representative_dataset) and both types int8"
            )
        if full:
            return CompileOptions(
                batch=None,
                quantize="int8",
                calibration=_samples(self.representative_dataset),
                source="TorchConverter",
                int8=Int8Options(io=types == {"int8"}),
            )
        quantize = "dynamic" if self.optimizations else "none"
        return CompileOptions(batch=None, quantize=quantize, source="TorchConverter")

    def to_onnx(self) -> onnx.ModelProto:
        """The ONNX model (torch.onnx + edgelstm's rewrite)."""
        return from_torch_module(
            self.module,
            self.example_input,
            self._options(),
            dynamo=self.dynamo,
            input_names=self.input_names,
            output_names=self.output_names,
            dynamic_axes=self.dynamic_axes,
            strict=self.strict,
        )

    def convert(self) -> bytes:
        """The .tflite bytes: one file, every nn.LSTM a fused op (needs litert-torch)."""
        from edgelstm.whole.torch_split import torch_to_tflite

        args = _as_args(_torch(), self.example_input)
        if len(args) != 1:
            raise UnsupportedError(
                "tflite", f"the TFLite split takes a module with one input, found {len(args)}"
            )
        return torch_to_tflite(self.module, args[0], self._options())
