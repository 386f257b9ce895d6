"""How the unfused lowering schedules the recurrence: unrolled, or a WHILE loop of K steps per
trip writing its outputs in segments — chosen from the recurrent weights' bytes against
budgets measured on XNNPACK (each unrolled step and each step of a trip holds its own
packed copy of the recurrent weights).
"""

from __future__ import annotations

from edgelstm.ir.model import LSTMModel

UNROLL_BUDGET = 8 << 20
"""``auto`` unrolls fully while T copies of the recurrent weights (XNNPACK packs one per
FULLY_CONNECTED node) stay within this. Measured crossover (T=5/10/20/50, input 128):
H=64 dynamic unrolled wins at every T (0.8 MB at T=50); H=256 dynamic wins at T=20 (5 MB,
0.23 vs 0.26 ms) and loses at T=50 (12.8 MB, 0.78 vs 0.63); H=256 float wins at T=5 (5 MB),
ties at T=10 (10 MB), loses at T=20 (1.05 vs 0.58 ms)."""
MAX_CHUNK = 5
CHUNK_BUDGET = 6 << 20
"""Steps per WHILE trip: the largest divisor of T up to :data:`MAX_CHUNK` whose weight copies
fit this. Measured (T=50, dynamic): H=256 K=1 0.75, K=2 0.69, K=5 0.62, K=10 0.61 ms; H=1024
(4 MB of weights) K=1 6.1, K=2 6.2, K=5 12.3 ms."""
SEGMENT_BUDGET = 64 << 10
"""Output buffer bytes per WHILE op (see :func:`.loop.while_loop`): each
trip copies its buffer twice, each extra WHILE op costs ~12 us. Measured H=1024 K=1: one
50-step buffer 6.27 ms, 10-step segments 5.84, 5-step 5.79; H=256 K=5: 50-step 0.64,
10-step 0.68."""


def recurrent_bytes(model: LSTMModel, quantize: str) -> int:
    """Bytes of the recurrent (and projection) weights of every direction."""
    per = 4 if quantize == "none" else 1
    total = 0
    for v in model.walk():
        s = v.weights.spec
        total += (4 - s.cifg) * s.n_cell * s.n_output + s.projection * s.n_cell * s.n_output
    return total * per


def while_plan(
    model: LSTMModel,
    steps: int | None,
    quantize: str,
    batch: int | None = 1,
    chunk: int | None = None,
) -> tuple[int, int | None]:
    """(steps per trip, segment) of a WHILE schedule; ``chunk`` fixes the first."""
    if steps is None:
        return 1, None
    weights = recurrent_bytes(model, quantize)
    divisors = [k for k in range(1, steps + 1) if steps % k == 0]
    if chunk is None:
        chunk = max(
            k for k in divisors if k <= MAX_CHUNK and (k == 1 or k * weights <= CHUNK_BUDGET)
        )
    width = max(layer.n_output for layer in model.layers) * (batch or 1) * 4
    fits = [s for s in divisors if s % chunk == 0 and s * width <= SEGMENT_BUDGET]
    return chunk, max(fits) if fits else chunk


def choose_schedule(
    model: LSTMModel, steps: int | None, quantize: str, batch: int | None = 1
) -> tuple[str, int, int | None]:
    """(kind, steps per trip, segment) ``auto`` picks; see the budgets above."""
    if steps is not None and recurrent_bytes(model, quantize) * steps <= UNROLL_BUDGET:
        return "unrolled", steps, None
    return ("while", *while_plan(model, steps, quantize, batch))
