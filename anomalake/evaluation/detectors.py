"""Detectors described as JSON-able dicts, so a tuned configuration can be saved and reused.

A configuration names a ``kind`` and its parameters, for example::

    {"kind": "peak", "window": 100, "of": {"kind": "rolling_z", "window": 1000, "warmup": 50}}
    {"kind": "combine", "how": "max", "parts": [{"kind": "ewma", "alpha": 0.01}, ...]}
    {"kind": "mewma", "warmup": 400, "lam": 0.2}

``peak`` and ``hold`` filter the scores of the detector ``of``; ``combine`` merges the
scores of its ``parts`` with :func:`spark.detectors.univariate.combine`. ``t2`` and
``mewma`` take vectors, the others numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anomalake.errors import AnomalakeError
from spark.detectors.multivariate import HotellingT2, MewmaT2
from spark.detectors.univariate import (
    EwmaBand,
    HoldFilter,
    PeakFilter,
    RollingZScore,
    combine,
)

Update = Callable[[Any], float]
Factory = Callable[[], Update]

DETECTORS: dict[str, Callable[..., Any]] = {
    "ewma": EwmaBand,
    "rolling_z": RollingZScore,
    "t2": HotellingT2,
    "mewma": MewmaT2,
}
FILTERS: dict[str, Callable[..., Any]] = {"peak": PeakFilter, "hold": HoldFilter}
KINDS = (*DETECTORS, *FILTERS, "combine")


def _params(config: dict[str, Any], *skip: str) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("kind", *skip)}


def build(config: dict[str, Any]) -> Factory:
    """A factory of fresh detectors' ``update`` functions for ``config``."""
    kind = config.get("kind")
    try:
        if kind in DETECTORS:
            cls, params = DETECTORS[kind], _params(config)
            cls(**params)  # fail now on a bad parameter, not inside the first file
            return lambda: cls(**params).update
        if kind in FILTERS:
            inner = build(config["of"])
            flt, params = FILTERS[kind], _params(config, "of")
            flt(**params)

            def filtered() -> Update:
                source, post = inner(), flt(**params).update
                return lambda x: post(source(x))

            return filtered
        if kind == "combine":
            parts = [build(p) for p in config["parts"]]
            how, weights = config.get("how", "max"), config.get("weights")

            def combined() -> Update:
                updates = [p() for p in parts]
                return lambda x: combine([u(x) for u in updates], weights, how)

            return combined
    except (KeyError, TypeError) as exc:
        raise AnomalakeError(
            f"bad detector configuration {config!r}: {exc}", "see anomalake/evaluation/detectors.py"
        ) from None
    raise AnomalakeError(f"unknown detector kind {kind!r}", f"use one of {', '.join(KINDS)}")


def describe(config: dict[str, Any]) -> str:
    """A one-line name, e.g. ``peak(window=100) of rolling_z(window=1000, warmup=50)``."""
    kind = config.get("kind", "?")
    if kind == "combine":
        inner = ", ".join(describe(p) for p in config.get("parts", []))
        return f"{config.get('how', 'max')}({inner})"
    args = ", ".join(f"{k}={v}" for k, v in _params(config, "of").items())
    text = f"{kind}({args})"
    return f"{text} of {describe(config['of'])}" if "of" in config else text


def multivariate(config: dict[str, Any]) -> bool:
    """Whether the detector takes vectors (T², MEWMA) rather than numbers."""
    kind = config.get("kind")
    if kind in FILTERS:
        return multivariate(config["of"])
    if kind == "combine":
        return any(multivariate(p) for p in config.get("parts", []))
    return kind in ("t2", "mewma")
