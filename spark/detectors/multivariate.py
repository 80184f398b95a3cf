"""Multivariate detectors for sensor vectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import chi2


@dataclass
class HotellingT2:
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

    def update(self, x: np.ndarray | list[float]) -> float:
        """Score one vector (0 during warm-up)."""
        v = np.asarray(x, dtype=float)
        if self.n < self.warmup:
            if self.mean is None or self.m2 is None:
                self.mean, self.m2 = np.zeros_like(v), np.zeros((v.size, v.size))
            self.n += 1
            delta = v - self.mean
            self.mean = self.mean + delta / self.n
            self.m2 = self.m2 + np.outer(delta, v - self.mean)
            return 0.0
        if self.inverse is None:
            assert self.m2 is not None
            cov = self.m2 / max(self.n - 1, 1)
            scale = np.mean(np.diag(cov)) or 1.0
            self.inverse = np.linalg.pinv(cov + self.ridge * scale * np.eye(cov.shape[0]))
        assert self.mean is not None
        d = v - self.mean
        t2 = float(d @ self.inverse @ d)
        return float(chi2.cdf(t2, df=v.size))

    def state(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "warmup": self.warmup,
            "ridge": self.ridge,
            "n": self.n,
            "mean": None if self.mean is None else self.mean.tolist(),
            "m2": None if self.m2 is None else self.m2.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HotellingT2:
        """Rebuild from :meth:`state`."""
        return cls(
            warmup=state["warmup"],
            ridge=state["ridge"],
            n=state["n"],
            mean=None if state["mean"] is None else np.asarray(state["mean"]),
            m2=None if state["m2"] is None else np.asarray(state["m2"]),
        )
