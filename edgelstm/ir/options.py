"""Options shared by every emitter (TFLite and ONNX), so the CLI and API speak one language.

:class:`CompileOptions` is the one entry. What only one mode or target reads sits in a typed
group on it: :class:`Int8Options` (full-integer TFLite), :class:`OnnxOptions` (the ONNX
emitter), :class:`UnfusedOptions` (the unfused TFLite lowering).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from edgelstm.errors import CalibrationError, SpecError

Quantize = Literal["none", "dynamic", "int8", "int16x8"]
QUANTIZE_MODES: tuple[str, ...] = ("none", "dynamic", "int8", "int16x8")
DIM_MAX = 2**31 - 1
"""Largest fixed batch / sequence length: TFLite tensor shapes are int32."""
Recurrence = Literal["scan", "loop"]
RECURRENCES: tuple[str, ...] = ("scan", "loop")
Target = Literal["tflite", "tflm"]
TARGETS: tuple[str, ...] = ("tflite", "tflm")
Schedule = Literal["auto", "while", "unrolled"]
SCHEDULES: tuple[str, ...] = ("auto", "while", "unrolled")
Lowering = Literal["fused", "integer", "auto"]
LOWERINGS: tuple[str, ...] = ("fused", "integer", "auto")
DynamicPriority = Literal["accuracy", "portable"]
DYNAMIC_PRIORITIES: tuple[str, ...] = ("accuracy", "portable")
EXTRA_KEYS = {"int8_io": "io", "estimator": "estimator", "progress": "progress"}
"""The keys the old ``CompileOptions(extra={...})`` dict took -> :class:`Int8Options` fields."""


def _check_count(owner: str, value: Any, *, limit: int = DIM_MAX) -> None:
    """None or an integer in 1..limit (a bool is not a count)."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit
    ):
        raise SpecError(
            f"{owner}: expected an integer in 1..{limit} (TFLite shapes are int32) or None, "
            f"found {value!r}"
        )


def _check_choice(owner: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(f"{owner}: expected one of {choices}, found {value!r}")


WEIGHT_PLANES = (1, 2)
"""int8 weight planes of the all-integer lowering (:attr:`Int8Options.weight_planes`)."""


@dataclass(frozen=True)
class Int8Options:
    """Choices of ``quantize="int8"`` (full-integer TFLite).

    ``io``: int8 graph input/output tensors (scale and zero point in their quantization, for
    integer-only targets) instead of float I/O (QUANTIZE after the input, DEQUANTIZE before
    each output: a drop-in replacement for the float file). ``estimator``: calibration range
    estimators, one name or one per quantity (see :func:`edgelstm.quant.plan.resolve_estimators`;
    None = the measured defaults). ``progress``: calibration progress bar on a terminal
    stderr (None = only under the CLI and for long work; True = also in library use).
    ``lowering``: "fused" (the fused int8 LSTM op, 8x8_16 kernel), "integer" (the
    all-integer unfused lowering with int16 gate math at scales chosen from calibration:
    fixed batch and sequence length, int8 I/O, no layer norm on LiteRT) or "auto" (the one
    with the lower error on a held-out split of the calibration data); see
    :mod:`edgelstm.targets.tflite.int8_choice` (built) and
    :mod:`edgelstm.measure.int8_choice` (``auto``).
    ``weight_planes``: 2 stores each weight matrix of the all-integer lowering (``lowering=
    "integer"``, ``quantize="int16x8"``, the TFLM profile) as two int8 planes — the codes and
    the per-channel codes of what they miss, run as two 16x8 FULLY_CONNECTEDs added in int16
    — for ~15-bit weights on the same kernels, at twice the weight bytes and products: for
    models whose int8 weights alone exceed an error budget (``verify --explain`` names the
    weights). 1 (default): one plane.
    """

    io: bool = False
    estimator: str | Mapping[str, str] | None = field(default=None, hash=False)
    progress: bool | None = None
    lowering: Lowering = "fused"
    weight_planes: int = 1

    def __post_init__(self) -> None:
        _check_choice("Int8Options.lowering", self.lowering, LOWERINGS)
        if self.weight_planes not in WEIGHT_PLANES:
            raise SpecError(
                f"Int8Options.weight_planes: expected one of {WEIGHT_PLANES}, found "
                f"{self.weight_planes!r}"
            )


@dataclass(frozen=True)
class OnnxOptions:
    """Choices of the ONNX emitter.

    ``force_composite`` emits every direction as the composite graph, even where the fused
    ``LSTM`` op is exact (benchmarks, tests); ``recurrence`` is the composite's loop:
    "scan" (default, measured faster) or "loop".

    ``state_inputs`` emits the streaming form: every initial h/c is a required graph input
    (the caller carries the final states from one call to the next); also implied by a
    stateful model. Without it the file has no state inputs (zeros in the graph), so
    onnxruntime opens it without warnings and no call can leak state into the next.
    ``sequence_lens`` adds a required ``sequence_lens`` [B] int32 input (ragged batches;
    only when every direction is a fused ``LSTM`` node).

    ``dynamic_priority`` picks the weight scheme of ``quantize="dynamic"``
    (:func:`edgelstm.targets.onnx.scheme_policy.choose`): "accuracy" (default) never measures
    less accurate than onnxruntime's own ``quantize_dynamic`` defaults, on this CPU nor
    (simulated) on x86 CPUs without VNNI, the fastest such scheme; "portable" (the policy
    before) judges the schemes by their simulated error without VNNI only, where ORT's
    full-range int8 saturates: safe int8 weights, at the same speed, that on a VNNI CPU
    measure less accurate than ORT's defaults (exporter corpus: 1.35x, geometric mean).
    """

    force_composite: bool = False
    recurrence: Recurrence = "scan"
    state_inputs: bool = False
    sequence_lens: bool = False
    dynamic_priority: DynamicPriority = "accuracy"

    def __post_init__(self) -> None:
        _check_choice("OnnxOptions.recurrence", self.recurrence, RECURRENCES)
        if self.dynamic_priority not in DYNAMIC_PRIORITIES:
            raise SpecError(
                f"OnnxOptions.dynamic_priority: expected one of {DYNAMIC_PRIORITIES}, found "
                f"{self.dynamic_priority!r} (CLI: --onnx-dynamic-priority accuracy|portable)"
            )
        for flag in ("state_inputs", "sequence_lens"):
            if not isinstance(getattr(self, flag), bool):
                raise SpecError(
                    f"OnnxOptions.{flag}: expected True or False, found {getattr(self, flag)!r}"
                )


@dataclass(frozen=True)
class UnfusedOptions:
    """Choices of the unfused TFLite lowering (:mod:`edgelstm.targets.tflite.unfused`).

    ``schedule``: "auto" (picked from the weight size and T), "unrolled" (needs a fixed
    ``seq_len``) or "while" with ``chunk`` steps per WHILE trip (a divisor of T) and output
    ``segment`` steps per WHILE op (a multiple of ``chunk`` dividing T); None picks them.

    ``state_inputs`` emits the streaming form: every initial h/c is a graph input
    ``layer{k}/{dir}/initial_h|c`` (TFLite has no optional inputs, so the caller must set
    them on every invoke); also implied by a stateful model. Without it the zero initial
    state is built in the graph and the file takes only ``input``: an app that sets just
    the input on a reused interpreter gets the same answer every invoke.
    """

    schedule: Schedule = "auto"
    chunk: int | None = None
    segment: int | None = None
    state_inputs: bool = False

    def __post_init__(self) -> None:
        _check_choice("UnfusedOptions.schedule", self.schedule, SCHEDULES)
        _check_count("UnfusedOptions.chunk", self.chunk)
        _check_count("UnfusedOptions.segment", self.segment)
        if not isinstance(self.state_inputs, bool):
            raise SpecError(
                f"UnfusedOptions.state_inputs: expected True or False, found {self.state_inputs!r}"
            )


@dataclass(frozen=True)
class CompileOptions:
    """How to emit a model.

    ``batch``/``seq_len`` fix the input shape (None = dynamic, resizable at run time);
    ``time_major`` overrides the model's own layout when not None; ``quantize`` is "none",
    "dynamic" (int8 weights, float activations), "int8" (full integer, needs
    ``calibration``: [N, T, I] sequences) or "int16x8" (int16 activations, int8 weights:
    the all-integer lowering, :func:`edgelstm.targets.tflite.int8_choice.to_tflite_int16x8`;
    needs ``calibration`` and a fixed ``seq_len``, checked here; ``int8.io`` gives int16
    I/O); ``source`` is recorded in provenance.
    ``int8``, ``onnx`` and ``unfused`` hold the choices only that mode or target reads.
    ``extra`` is the old untyped form of ``int8`` (keys "int8_io", "estimator", "progress"),
    still accepted with a DeprecationWarning.
    ``target`` "tflm" is the TFLite Micro profile of a .tflite file (full int8, int8 I/O,
    fixed shapes, only ops TFLM has; :mod:`edgelstm.targets.tflite.micro`).
    """

    batch: int | None = 1
    seq_len: int | None = None
    time_major: bool | None = None
    quantize: Quantize = "none"
    calibration: np.ndarray | None = field(default=None, repr=False, compare=False)
    source: str = "api"
    int8: Int8Options = field(default_factory=Int8Options)
    onnx: OnnxOptions = field(default_factory=OnnxOptions)
    unfused: UnfusedOptions = field(default_factory=UnfusedOptions)
    target: Target = "tflite"
    extra: InitVar[Mapping[str, Any] | None] = None

    def __post_init__(self, extra: Mapping[str, Any] | None) -> None:
        for name in ("batch", "seq_len"):
            _check_count(f"CompileOptions.{name}", getattr(self, name))
        _check_choice("CompileOptions.quantize", self.quantize, QUANTIZE_MODES)
        _check_choice("CompileOptions.target", self.target, TARGETS)
        for name, kind in (
            ("int8", Int8Options),
            ("onnx", OnnxOptions),
            ("unfused", UnfusedOptions),
        ):
            if not isinstance(getattr(self, name), kind):
                raise SpecError(
                    f"CompileOptions.{name}: expected {kind.__name__}, "
                    f"found {type(getattr(self, name)).__name__}"
                )
        if extra:
            self._fold_extra(extra)
        if self.quantize == "int16x8":
            self._check_int16x8()
        if self.int8.weight_planes > 1 and not self._integer_lowering():
            raise SpecError(
                "Int8Options.weight_planes=2 (--weight-planes 2) applies to the all-integer "
                "lowering only: use --quantize int16x8, --int8-lowering integer or --target "
                "tflm with --quantize int8"
            )

    def _integer_lowering(self) -> bool:
        """Whether the weights go to the all-integer (int16 gate math) lowering."""
        if self.quantize == "int16x8":
            return True
        return self.quantize == "int8" and (
            self.int8.lowering == "integer" or self.target == "tflm"
        )

    def _check_int16x8(self) -> None:
        """The integer lowering's needs: its scales come from calibration, and its
        recurrence is a fixed-length WHILE loop."""
        if self.calibration is None:
            raise CalibrationError(
                "quantize='int16x8' needs calibration data: representative [N, T, I] input "
                "sequences (--calibration X.npy / calibration=X); or use --quantize dynamic"
            )
        if self.seq_len is None:
            raise SpecError(
                "quantize='int16x8' needs a fixed sequence length: --seq-len T (seq_len=T); "
                "the int16 lowering's recurrence is a fixed-length loop"
            )
        if self.int8.lowering != "fused":
            raise SpecError(
                "quantize='int16x8' is its own lowering: drop Int8Options(lowering=...) "
                "(--int8-lowering), which chooses between the int8 lowerings"
            )

    def _fold_extra(self, extra: Mapping[str, Any]) -> None:
        """The old ``extra={"int8_io": ...}`` dict, onto :attr:`int8` (typos refused)."""
        warnings.warn(
            "CompileOptions(extra=...) is deprecated: use int8=Int8Options(io=..., "
            "estimator=..., progress=...)",
            DeprecationWarning,
            stacklevel=4,
        )
        unknown = sorted(set(extra) - set(EXTRA_KEYS))
        if unknown:
            raise SpecError(
                f"CompileOptions.extra: unknown keys {unknown}; known: {sorted(EXTRA_KEYS)}"
            )
        fields = {EXTRA_KEYS[key]: value for key, value in extra.items()}
        object.__setattr__(self, "int8", replace(self.int8, **fields))
