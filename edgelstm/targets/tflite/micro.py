"""The TFLite Micro profile of the TFLite target (``CompileOptions(target="tflm")``).

TFLM (microcontrollers) runs full-integer files of fixed shape from a static arena, with
its own op list. So this profile always writes full int8 with int8 I/O, a fixed batch
(default 1) and sequence length, and picks the lowering per model:

* every cell plain or cell-clip -> the fused UNIDIRECTIONAL_SEQUENCE_LSTM (24-input form),
  TFLM's integer 8x8_16 kernel;
* anything TFLM's fused kernel lacks (peephole, projection ± bias, projection clip, CIFG,
  layer norm) -> the unfused lowering (:mod:`.unfused`), all-integer by default
  (``gates="int16"``, :mod:`.unfused.icell`): int8 per-channel weights in 16x8
  FULLY_CONNECTEDs (W x_t, R h, projection, dense head), int16 gate math (ADD, SUB, MUL,
  LOGISTIC, TANH, MINIMUM/MAXIMUM clips; MEAN, SQUARED_DIFFERENCE, RSQRT for layer norm),
  cell state int16 with a power-of-two scale, int8 graph I/O, zero initial states as
  constants, recurrence as a WHILE loop (default: smallest arena) or unrolled. Non-tanh
  cells keep float32 gate math (``gates="float32"``: int8 matrix products, float
  elementwise ops; software float on an MCU without an FPU). The choice is measured: see
  :mod:`edgelstm.measure.micro`; the file's metadata records it (``lowering.gates``).

Hybrid (``quantize="dynamic"``) and float-only (``"none"``) are refused: TFLM returns NaN on
a hybrid LSTM, and a float file defeats the integer target. The loadability check against
TFLM's op list and the arena measurement live in :mod:`edgelstm.measure.micro`.
"""

from __future__ import annotations

from dataclasses import replace

from edgelstm.errors import UnsupportedError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.ir.weights import LSTMWeights

TARGET = "--target tflm"


def fused_features(model: LSTMModel) -> list[str]:
    """The features of ``model`` TFLM's fused LSTM kernel lacks ([] = it runs fused)."""
    found: list[str] = []
    for v in model.walk():
        s = v.weights.spec
        for name, used in (
            ("peephole", s.peephole),
            ("projection", s.projection),
            ("CIFG", s.cifg),
            ("layer norm", s.layer_norm),
        ):
            if used and name not in found:
                found.append(name)
    return found


def micro_options(options: CompileOptions) -> CompileOptions:
    """``options`` checked for TFLM and completed: int8 I/O, batch 1 when dynamic."""
    if options.quantize not in ("int8", "int16x8"):
        why = {
            "dynamic": "a hybrid LSTM (int8 weights, float activations) loads on TFLM and "
            "returns ~99% NaN",
            "none": "a float-only file needs a float unit and 4x the flash/RAM on a "
            "microcontroller",
        }[options.quantize]
        raise UnsupportedError(
            TARGET, f"--quantize {options.quantize}: {why}; use --quantize int8 (full integer)"
        )
    if options.seq_len is None:
        raise UnsupportedError(
            TARGET, "TFLite Micro cannot resize tensors: pass a fixed --seq-len T (seq_len=T)"
        )
    return replace(
        options,
        batch=options.batch or 1,
        target="tflm",
        int8=replace(options.int8, io=True, lowering="fused"),
    )


def lowering_of(model: LSTMModel, options: CompileOptions) -> str:
    """ "fused" or "unfused/<schedule>": what :func:`to_tflm` writes for these options."""
    if options.quantize == "int16x8":
        return "unfused/while (int16 activations)"
    if not fused_features(model):
        return "fused"
    schedule = options.unfused.schedule
    return f"unfused/{'while' if schedule == 'auto' else schedule}"


GATES = ("int16", "float32")


def gate_math(model: LSTMModel) -> str:
    """The unfused lowering's default gate arithmetic for ``model``: "int16" (all-integer)
    when every cell uses tanh (TFLM's int16 TANH/LOGISTIC), else "float32"."""
    if all(v.weights.spec.activation == "tanh" for v in model.walk()):
        return "int16"
    return "float32"


def to_tflm(
    model: LSTMModel | LSTMWeights, options: CompileOptions, gates: str | None = None
) -> bytes:
    """Compile ``model`` for TFLite Micro (see the module docstring); not yet load-checked.
    ``gates`` (unfused lowering only): "int16" or "float32" gate math, None =
    :func:`gate_math`. ``quantize="int16x8"``: the all-integer lowering with int16
    activations (:func:`edgelstm.targets.tflite.int8_choice.to_tflite_int16x8`)."""
    model = LSTMModel.of(model)
    options = micro_options(options)
    if options.quantize == "int16x8":
        from edgelstm.targets.tflite.int8_choice import to_tflite_int16x8

        return to_tflite_int16x8(model, options)
    if not fused_features(model):
        from edgelstm.targets.tflite.fused import to_tflite

        return to_tflite(model, options)
    from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused

    if model.stateful:
        raise UnsupportedError(
            TARGET,
            f"a stateful model with {', '.join(fused_features(model))}: the TFLM lowering "
            "starts every invoke from a zero state; compile it as not stateful and carry the "
            "state in your application, or use plain / cell-clip cells (TFLM's fused kernel "
            "keeps state)",
        )

    if options.unfused.schedule == "auto":  # WHILE: a fraction of the unrolled arena
        options = replace(options, unfused=replace(options.unfused, schedule="while", chunk=1))
    gates = gate_math(model) if gates is None else gates
    if gates not in GATES:
        raise ValueError(f"gates: expected one of {GATES}, found {gates!r}")
    return to_tflite_unfused(model, options, gates=gates)
