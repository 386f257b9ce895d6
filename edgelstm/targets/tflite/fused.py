"""Float and hybrid TFLite: :func:`to_tflite` / :func:`save_tflite`, fused LSTM ops.

The graph (stacking, bidirectional, last step, head, state outputs, signature and
tensor names) is :class:`~edgelstm.targets.tflite.graph.GraphEmitter`'s; this module gives
its ops float32 weights or, for ``quantize="dynamic"``, int8 weights with float activations
(hybrid), and a float head. ``quantize="int8"`` goes to :mod:`.int8` (full integer).
"""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np

from edgelstm._io import write_bytes_atomic
from edgelstm.errors import UnsupportedError
from edgelstm.ir.model import DirectionVisit, LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.ir.weights import LSTMWeights
from edgelstm.targets.tflite.graph import FC_KEEP_NUM_DIMS_VERSION, GraphEmitter
from edgelstm.targets.tflite.hybrid import hybrid_tensors
from edgelstm.targets.tflite.lstm_op import LSTMOpTensors, check_activation, float_tensors
from edgelstm.targets.tflite.schema import BuiltinOperator, BuiltinOptions, schema


class _FloatEmitter(GraphEmitter):
    """Float32 ops, or hybrid ops (int8 weights) for ``quantize="dynamic"``; a float head."""

    def op_tensors(self, visit: DirectionVisit) -> LSTMOpTensors:
        if self.options.quantize == "dynamic":
            return hybrid_tensors(visit.weights, moments=self._moments(visit))
        return float_tensors(visit.weights)

    def _moments(self, visit: DirectionVisit):
        """The calibration's second moments of this direction (None without calibration
        data: nearest codes)."""
        calib = self._calibration
        return None if calib is None else calib.stats[visit.k][visit.d].moments

    @cached_property
    def _calibration(self):
        """One calibration pass for every direction (None without calibration data)."""
        opts = self.options
        if opts.calibration is None:
            return None
        from edgelstm.quant.calibrate import calibrate

        return calibrate(self.model, opts.calibration, progress=opts.int8.progress)

    def head(self, x: int, rank: int) -> int:
        head = self.model.head
        assert head is not None
        kernel = self.g.add_constant("head/kernel", head.kernel.astype(np.float32))
        bias = self.g.add_constant("head/bias", head.bias.astype(np.float32))
        make = self.seq_tensor if rank == 3 else self.step_tensor
        fc_out = make("head/dense" if head.activation == "softmax" else "head/output", head.units)
        opts = schema.FullyConnectedOptionsT()
        opts.keepNumDims = rank == 3
        self.g.add_operator(
            BuiltinOperator.FULLY_CONNECTED,
            [x, kernel, bias],
            [fc_out],
            BuiltinOptions.FullyConnectedOptions,
            opts,
            version=FC_KEEP_NUM_DIMS_VERSION if rank == 3 else 1,
        )
        if head.activation != "softmax":
            return fc_out
        out = make("head/output", head.units)
        sm = schema.SoftmaxOptionsT()
        sm.beta = 1.0
        self.g.add_operator(
            BuiltinOperator.SOFTMAX, [fc_out], [out], BuiltinOptions.SoftmaxOptions, sm
        )
        return out


def _check_supported(model: LSTMModel) -> None:
    for v in model.walk():
        try:
            check_activation(v.weights.spec)
        except UnsupportedError as exc:
            raise UnsupportedError("tflite", f"layer {v.k}: {exc.reason}") from None


def to_tflite(model: LSTMModel | LSTMWeights, options: CompileOptions | None = None) -> bytes:
    """Compile ``model`` to .tflite bytes (deterministic: same input, same bytes).

    ``options.quantize``: "none" (float32), "dynamic" (int8 weights, float activations,
    op version 3), "int8" (:func:`.int8.to_tflite_int8`; with ``Int8Options(lowering=
    "integer")`` the all-integer unfused lowering, :mod:`.int8_choice`) or "int16x8"
    (that lowering with int16 activations, :func:`.int8_choice.to_tflite_int16x8`). Refuses with
    :class:`UnsupportedError` what the fused kernel cannot compute exactly.
    """
    model = LSTMModel.of(model)
    options = options if options is not None else CompileOptions()
    _check_supported(model)
    if options.quantize == "int16x8":  # int16 activations: the all-integer lowering
        from edgelstm.targets.tflite.int8_choice import to_tflite_int16x8

        return to_tflite_int16x8(model, options)
    if options.quantize == "int8":
        # Imported here: the quantizer (calibration, the float64 reference) loads only for int8.
        if options.int8.lowering == "integer":  # the all-integer unfused lowering
            from edgelstm.targets.tflite.int8_choice import to_tflite_integer

            return to_tflite_integer(model, options)
        if options.int8.lowering == "auto":
            raise UnsupportedError(
                "tflite",
                "Int8Options(lowering='auto') is a measured choice (both lowerings run on "
                "LiteRT): use edgelstm.measure.int8_choice.to_tflite_int8_choice(model, "
                "options) or the CLI's --int8-lowering auto; to_tflite builds 'fused' or "
                "'integer'",
            )
        from edgelstm.targets.tflite.int8 import to_tflite_int8

        return to_tflite_int8(model, options)
    return _FloatEmitter(model, options).build()


def save_tflite(
    model: LSTMModel | LSTMWeights,
    path: str | os.PathLike[str],
    options: CompileOptions | None = None,
) -> None:
    """Compile and write atomically (on any error no file is written or replaced)."""
    data = to_tflite(model, options)
    write_bytes_atomic(path, data)
