"""Streaming range observation and the range estimators that turn observations into ranges.

An :class:`Observer` keeps the exact min/max of everything it saw plus a uniform random
sample of bounded size (bottom-k by random key, seeded: reproducible), so robust estimators
work on calibrations of any length in bounded memory.

Estimators (``ESTIMATORS``):

* ``minmax`` — the observed extremes. Nothing seen in calibration saturates.
* ``percentile`` — the 0.01 / 99.99 percentiles (|x| for symmetric ranges): ignores rare
  outliers, trading their saturation for resolution on the bulk.
* ``mse`` — the clipping range minimising the mean squared quantization error of the sample
  at the target bit width (grid search over shrink factors of the min/max range).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SAMPLE_CAP = 1 << 17
PERCENTILE = 99.99
UPDATE_CHUNK = 1 << 16
"""Values keyed per round of :meth:`Observer.update` (the sample does not depend on it)."""


@dataclass
class Observer:
    """Exact extremes and a bounded uniform sample of every value passed to :meth:`update`."""

    cap: int = SAMPLE_CAP
    seed: int = 0
    lo: float = np.inf
    hi: float = -np.inf
    count: int = 0
    _values: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    _keys: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    _rng: np.random.Generator | None = field(default=None, repr=False)
    _threshold: float = field(default=np.inf, repr=False)
    """The largest key in the (full) sample: only smaller keys can still enter."""
    _pending: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)
    _pending_size: int = field(default=0, repr=False)

    def update(self, values: np.ndarray) -> None:
        v = np.asarray(values).ravel()  # any float dtype: no float64 copy of the whole batch
        if not v.size:
            return
        self.lo = min(self.lo, float(v.min()))
        self.hi = max(self.hi, float(v.max()))
        self.count += v.size
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        for start in range(0, v.size, UPDATE_CHUNK):  # bounded transients for big arrays
            self._offer(v[start : start + UPDATE_CHUNK])

    def _offer(self, v: np.ndarray) -> None:
        """Bottom-k by key. Candidates below the threshold wait in a pending list and are
        merged a quarter-sample at a time: a stale threshold only lets more candidates wait,
        so the sample is the same set as merging every chunk (the bottom-k of all keys)."""
        assert self._rng is not None
        keys = self._rng.random(v.size)
        if self._threshold < np.inf:
            enter = keys < self._threshold
            v, keys = v[enter], keys[enter]
            if not v.size:
                return
        self._pending.append((v.astype(np.float64), keys))
        self._pending_size += v.size
        if self._values.size + self._pending_size <= self.cap:
            return
        if self._values.size < self.cap or self._pending_size >= self.cap // 4:
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        values_all = np.concatenate([self._values, *(v for v, _ in self._pending)])
        keys_all = np.concatenate([self._keys, *(k for _, k in self._pending)])
        self._pending, self._pending_size = [], 0
        if values_all.size > self.cap:
            keep = np.argpartition(keys_all, self.cap)[: self.cap]
            values_all, keys_all = values_all[keep], keys_all[keep]
            self._threshold = float(keys_all.max())
        self._values, self._keys = values_all, keys_all

    @property
    def seen(self) -> bool:
        return self.count > 0

    @property
    def absmax(self) -> float:
        return max(abs(self.lo), abs(self.hi)) if self.seen else 0.0

    @property
    def sample(self) -> np.ndarray:
        """The sample ordered by key (the same array whatever the update/merge schedule)."""
        self._merge()
        order = np.argsort(self._keys, kind="stable")
        self._values, self._keys = self._values[order], self._keys[order]
        return self._values


def _levels(bits: int) -> int:
    return (1 << bits) - 1


def minmax(obs: Observer, symmetric: bool, bits: int) -> tuple[float, float]:
    """The observed extremes (as ±absmax when symmetric)."""
    if symmetric:
        return -obs.absmax, obs.absmax
    return obs.lo, obs.hi


def percentile(obs: Observer, symmetric: bool, bits: int) -> tuple[float, float]:
    """0.01 / 99.99 percentiles of the sample (of |x| when symmetric)."""
    s = obs.sample
    if symmetric:
        a = float(np.percentile(np.abs(s), PERCENTILE))
        return -a, a
    return float(np.percentile(s, 100 - PERCENTILE)), float(np.percentile(s, PERCENTILE))


def _quant_error(s: np.ndarray, lo: float, hi: float, bits: int) -> float:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        return float(np.mean(s**2))
    scale = (hi - lo) / _levels(bits)
    zp = np.round(-lo / scale)
    q = np.clip(np.round(s / scale) + zp, 0, _levels(bits))
    return float(np.mean((s - (q - zp) * scale) ** 2))


def mse(obs: Observer, symmetric: bool, bits: int) -> tuple[float, float]:
    """The shrink of the min/max range that minimises quantization MSE on the sample."""
    lo, hi = minmax(obs, symmetric, bits)
    s = obs.sample
    if s.size == 0 or hi - lo <= 0:
        return lo, hi
    best = (np.inf, 1.0)
    for factor in np.linspace(0.3, 1.0, 71):
        err = _quant_error(s, lo * factor, hi * factor, bits)
        if err < best[0] - 1e-18:
            best = (err, float(factor))
    return lo * best[1], hi * best[1]


Estimator = Callable[[Observer, bool, int], tuple[float, float]]

ESTIMATORS: dict[str, Estimator] = {"minmax": minmax, "percentile": percentile, "mse": mse}


def estimate(obs: Observer, name: str, *, symmetric: bool, bits: int = 8) -> tuple[float, float]:
    """Range of ``obs`` by estimator ``name`` (never wider than the observed extremes)."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown range estimator {name!r}; known: {sorted(ESTIMATORS)}")
    if not obs.seen:
        return 0.0, 0.0
    lo, hi = ESTIMATORS[name](obs, symmetric, bits)
    return float(lo), float(hi)
