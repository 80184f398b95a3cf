"""Multivariate detectors for sensor vectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy.stats import chi2

from anomalake.detection.state import JsonState


def _welford(
    mean: np.ndarray | None, m2: np.ndarray | None, n: int, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """One Welford step of the running mean and sum of squared deviations."""
    if mean is None or m2 is None:
        mean, m2 = np.zeros_like(v), np.zeros((v.size, v.size))
    delta = v - mean
    mean = mean + delta / (n + 1)
    return mean, m2 + np.outer(delta, v - mean), n + 1


def _ridged(cov: np.ndarray, ridge: float) -> np.ndarray:
    """``cov`` plus ``ridge`` times its mean variance on the diagonal (near-singular safe)."""
    scale = float(np.mean(np.diag(cov))) or 1.0
    return cov + ridge * scale * np.eye(cov.shape[0])


@dataclass
class HotellingT2(JsonState):
    """Hotelling's T² of each vector against the first ``warmup`` vectors (the normal regime).

    During warm-up it accumulates the mean and covariance (Welford, one pass) and scores 0;
    afterwards it scores ``chi2.cdf(T², p)``: the probability that a normal vector lies
    closer to the mean, so a threshold on the score is a threshold on T². Memory: a mean
    vector and a p x p matrix. ``ridge`` regularises a near-singular covariance.
    """

    warmup: int = 400
    ridge: float = 1e-6
    n: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    inverse: np.ndarray | None = field(default=None, repr=False)
    _derived: ClassVar[tuple[str, ...]] = ("inverse",)

    def update(self, x: np.ndarray | list[float]) -> float:
        """Score one vector (0 during warm-up)."""
        v = np.asarray(x, dtype=float)
        if self.n < self.warmup:
            self.mean, self.m2, self.n = _welford(self.mean, self.m2, self.n, v)
            return 0.0
        if self.inverse is None:
            assert self.m2 is not None
            self.inverse = np.linalg.pinv(_ridged(self.m2 / max(self.n - 1, 1), self.ridge))
        assert self.mean is not None
        d = v - self.mean
        t2 = float(d @ self.inverse @ d)
        return float(chi2.cdf(t2, df=v.size))


@dataclass
class EwmaT2(JsonState):
    """T² of each vector against exponentially weighted mean and covariance (adapts to drift).

    Each vector is scored against the estimates *before* it is learnt, as
    ``chi2.cdf(T², p)``; ``alpha`` is the weight of the newest vector (half-life
    ``ln 2 / -ln(1 - alpha)`` vectors). For streams that run for days, where a covariance
    fitted once (:class:`HotellingT2`) goes stale. Warm-up: ``warmup`` vectors (score 0).
    Memory: a mean vector and a p x p matrix.
    """

    alpha: float = 0.005
    warmup: int = 300
    ridge: float = 1e-6
    n: int = 0
    mean: np.ndarray | None = None
    cov: np.ndarray | None = None

    def update(self, x: np.ndarray | list[float]) -> float:
        """Score one vector, then learn it."""
        v = np.asarray(x, dtype=float)
        if self.mean is None or self.cov is None:
            self.mean, self.cov, self.n = v.copy(), np.zeros((v.size, v.size)), 1
            return 0.0
        d = v - self.mean
        score = 0.0
        if self.n >= self.warmup:
            inverse = np.linalg.pinv(_ridged(self.cov, self.ridge))
            score = float(chi2.cdf(float(d @ inverse @ d), df=v.size))
        # before warm-up ends the weights are 1/n (a plain mean), then alpha
        a = max(self.alpha, 1.0 / (self.n + 1))
        self.mean = self.mean + a * d
        self.cov = (1 - a) * (self.cov + a * np.outer(d, d))
        self.n += 1
        return score


@dataclass
class MewmaT2(JsonState):
    """Multivariate EWMA chart: Hotelling's T² of a smoothed vector (Lowry et al., 1992).

    Like :class:`HotellingT2` it learns the mean and covariance of the first ``warmup``
    vectors (the normal regime) and scores 0 meanwhile. Afterwards it smooths each vector,
    ``z = lam * x + (1 - lam) * z`` (starting from the learned mean), and scores
    ``chi2.cdf(T², p)`` with T² of ``z`` against the covariance of a smoothed normal
    vector, ``lam / (2 - lam) * cov``. Smoothing averages out sensor noise, so small
    sustained shifts stand out and single noisy rows do not; ``lam = 1`` is plain T².
    Memory: two vectors and a p x p matrix.
    """

    warmup: int = 400
    lam: float = 0.2
    ridge: float = 1e-6
    n: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    z: np.ndarray | None = None
    inverse: np.ndarray | None = field(default=None, repr=False)
    _derived: ClassVar[tuple[str, ...]] = ("inverse",)

    def update(self, x: np.ndarray | list[float]) -> float:
        """Score one vector (0 during warm-up)."""
        v = np.asarray(x, dtype=float)
        if self.n < self.warmup:
            self.mean, self.m2, self.n = _welford(self.mean, self.m2, self.n, v)
            return 0.0
        assert self.mean is not None and self.m2 is not None
        if self.inverse is None:
            cov = _ridged(self.m2 / max(self.n - 1, 1), self.ridge)
            self.inverse = np.linalg.pinv(cov * self.lam / (2.0 - self.lam))
        z = self.mean if self.z is None else self.z
        self.z = self.lam * v + (1.0 - self.lam) * z
        d = self.z - self.mean
        return float(chi2.cdf(float(d @ self.inverse @ d), df=v.size))
