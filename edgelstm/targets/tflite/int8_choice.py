"""Which full-int8 lowering a .tflite gets: the fused kernel, the all-integer one, or measured.

TFLite's fused int8 LSTM kernel (8x8_16) keeps the gate accumulators at a fixed Q3.12
(saturating at ±8) unless the cell has layer norm; trained cells whose pre-activations go
past ±8 (a voice-activity detector's: ReLU inputs, |c| up to ~50) lose accuracy there and
nothing in the file can change it. The all-integer unfused lowering of the TFLite Micro
profile (:mod:`.unfused.icell`: int8 weights in 16x8 FULLY_CONNECTEDs, int16 gate math at
power-of-two scales chosen from the calibration ranges, int16 cell and h) also runs on LiteRT
(within 1 output code of TFLM on <= 2% of outputs), so it is offered to LiteRT users too
(``Int8Options(lowering=...)``):

* "fused" (default): :func:`.int8.to_tflite_int8`;
* "integer": that lowering, with its profile's limits: int8 graph I/O, a fixed batch
  (default 1) and sequence length (``seq_len``), tanh cells, not stateful, and no layer norm
  (LiteRT has no int16 SQUARED_DIFFERENCE);
* "auto": a measured choice, made in :mod:`edgelstm.measure.int8_choice` (both compiled on
  3/4 of the calibration data and run on LiteRT on the rest; the lower output RMSE wins).
  This module only builds.

``quantize="int16x8"`` (:func:`to_tflite_int16x8`) is the same lowering with int16
activations end to end (int16 graph input, h and outputs; int8 weights): the int8 input
grid is what held "integer" at its floor on the VAD. Held-out, same yardstick: VAD 1.71 LSB
/ 0.33 / 1.0% flips, char LM 0.27 / 0.011 / 1.0%, JV 0.22 / 0.070 / 0; the same latency and
size as "integer" (VAD 33.2 vs 33.4 ms). The VAD's int8 weights alone (float64 otherwise)
give 1.10 LSB / 0.13 / 0.3%: the rest is the int16 gate math.

Measured on the trained corpus (``tools/bench_int8_trained.py``, held-out data, RMSE in
output LSB / max as a fraction of the output half-width / decision flips): Silero VAD
fused 3.91 / 0.85 / 1.1%, integer 2.18 / 0.68 / 0.8%; char LM flips 3.0% -> 1.1%;
JapaneseVowels ties (0.36 vs 0.37 LSB). LiteRT, 1 thread, batch 1: integer is faster
(VAD 73 vs 81 ms for 625 steps, char LM 11.5 vs 16.2 ms, JV 0.35 vs 0.63 ms) and larger
(1.3-1.4x). Neither meets the issue's bar on the VAD or the char LM, and no int8 file can:
the float64 reference with only the VAD's input on its int8 grid is off by 1.9 LSB (max
0.65, flips 0.6%); the char LM with only its weights int8 (per channel, nearest) flips 0.75%
of its held-out steps (int8 head too: 1.0%), so "integer" sits at those floors.
"""

from __future__ import annotations

from dataclasses import replace

from edgelstm.errors import UnsupportedError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions, UnfusedOptions
from edgelstm.ir.weights import LSTMWeights

FLAG = "--int8-lowering integer"


def integer_refusal(model: LSTMModel, options: CompileOptions) -> str | None:
    """Why the integer lowering cannot compile ``model`` for LiteRT (None = it can)."""
    if options.seq_len is None:
        return "it needs a fixed sequence length (--seq-len T / seq_len=T)"
    for v in model.walk():
        spec = v.weights.spec
        if spec.layer_norm:
            return "layer norm: LiteRT has no int16 SQUARED_DIFFERENCE (TFLM has: --target tflm)"
        if spec.activation != "tanh":
            return f"activation {spec.activation}: the integer cell is tanh only"
    if model.stateful:
        return "a stateful model: the integer lowering starts every invoke from zero state"
    return None


def to_tflite_integer(model: LSTMModel | LSTMWeights, options: CompileOptions) -> bytes:
    """The all-integer lowering for LiteRT (see the module docstring); int8 I/O, batch
    ``options.batch`` (default 1), WHILE schedule."""
    from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused

    model = LSTMModel.of(model)
    why = integer_refusal(model, options)
    if why is not None:
        raise UnsupportedError(FLAG, f"{why}; use --int8-lowering fused")
    profile = replace(  # the TFLM profile's shape of the file (int8 I/O, fixed batch)
        options,
        batch=options.batch or 1,
        target="tflm",
        int8=replace(options.int8, io=True, lowering="fused"),
        unfused=UnfusedOptions(schedule="while", chunk=1),
    )
    return to_tflite_unfused(model, profile, gates="int16")


INT16X8 = "--quantize int16x8"


def int16x8_refusal(model: LSTMModel, options: CompileOptions) -> str | None:
    """Why ``quantize="int16x8"`` cannot compile ``model`` for ``options.target`` (None = it
    can): the integer lowering's limits, layer norm allowed on TFLM only."""
    for v in model.walk():
        spec = v.weights.spec
        if spec.layer_norm and options.target != "tflm":
            return (
                "layer norm: LiteRT has no int16 SQUARED_DIFFERENCE; compile for TFLite Micro "
                "(--target tflm) or use --quantize int8"
            )
        if spec.activation != "tanh":
            return (
                f"activation {spec.activation}: the int16 cell is tanh only (TFLM/LiteRT "
                "int16 LOGISTIC/TANH); use --quantize int8"
            )
    if model.stateful:
        return (
            "a stateful model: the int16x8 lowering starts every invoke from zero state; "
            "compile it as not stateful or use --quantize int8"
        )
    return None


def to_tflite_int16x8(model: LSTMModel | LSTMWeights, options: CompileOptions) -> bytes:
    """``quantize="int16x8"``: the all-integer lowering with int16 activations end to end.

    int8 per-channel weights in 16x8 FULLY_CONNECTEDs, int16 gate math, cell, h, layer
    outputs and graph input (a power-of-two scale covering the calibrated max|x| with 1.5x
    headroom): the int8 input grid is what limits :func:`to_tflite_integer` on inputs that
    need more than 8 bits (the VAD's). Graph I/O is float with QUANTIZE float->int16 /
    DEQUANTIZE int16->float around it, or int16 with ``Int8Options(io=True)``. Runs on
    LiteRT and (``options.target == "tflm"``) on TFLite Micro, where layer norm is allowed.
    ``CompileOptions`` has already checked ``calibration`` and ``seq_len``.
    """
    from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused

    model = LSTMModel.of(model)
    why = int16x8_refusal(model, options)
    if why is not None:
        raise UnsupportedError(INT16X8, why)
    profile = replace(  # the TFLM profile's lowering; quantize="int8" is its weights' mode
        options,
        quantize="int8",
        batch=options.batch or 1,
        target="tflm",
        int8=replace(options.int8, lowering="fused"),
        unfused=UnfusedOptions(schedule="while", chunk=1),
    )
    return to_tflite_unfused(model, profile, gates="int16", activations="int16")
