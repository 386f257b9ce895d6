"""Which configurations the full-integer (8x8_16) LSTM kernel computes correctly.

Refusing is better than emitting a file that runs and is silently wrong. Each reason names
the alternative (hybrid = ``quantize="dynamic"``: int8 weights, float activations, which
supports every feature).
"""

from __future__ import annotations

from edgelstm.errors import UnsupportedError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.spec import LSTMSpec

TARGET = "tflite int8"
_HYBRID = "use quantize='dynamic' (hybrid: int8 weights, float activations) or float"


def check_spec(spec: LSTMSpec) -> None:
    """Raise :class:`UnsupportedError` if the integer kernel cannot run ``spec`` exactly."""
    if spec.activation != "tanh":
        raise UnsupportedError(
            TARGET,
            f"activation {spec.activation!r}: the full-integer LSTM kernel ignores the "
            f"activation option and always applies tanh; {_HYBRID}",
        )
    if spec.peephole and spec.n_output < spec.n_cell:
        # quantize_model() never gets here: it first pads such directions (quantize/pad.py).
        raise UnsupportedError(
            TARGET,
            f"peephole with projection to n_output={spec.n_output} < n_cell={spec.n_cell}: "
            "the integer kernel applies the peephole to only the first n_output cells "
            "(it passes n_output as the vector length), a 26-30 LSB error; plan the model "
            f"with quantize_model(), which pads the projection exactly, or {_HYBRID}",
        )
    if spec.layer_norm and spec.n_cell & (spec.n_cell - 1):
        raise UnsupportedError(
            TARGET,
            f"layer norm with n_cell={spec.n_cell}: the integer kernel's variance "
            "(2^20 / n_cell in integer arithmetic) is exact only for a power-of-two "
            f"n_cell; {_HYBRID}",
        )


def check_model(model: LSTMModel) -> None:
    """Check every direction of ``model`` (layer index in the message when it fails)."""
    for v in model.walk():
        try:
            check_spec(v.weights.spec)
        except UnsupportedError as exc:
            where = f"layer {v.k}" + (" backward" if v.d else "")
            raise UnsupportedError(TARGET, f"{where}: {exc.reason}") from None
