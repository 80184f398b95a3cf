"""The one registry of detector kinds: the stream, the batch, ``eval`` and ``tune`` build here.

A detector is described by a JSON-able configuration: its ``kind`` and its parameters,
with filters and combinations nesting other configurations::

    {"kind": "rolling_z", "window": 300, "warmup": 120}
    {"kind": "peak", "window": 100, "of": {"kind": "rolling_z", "window": 3000, "warmup": 50}}
    {"kind": "combine", "how": "max", "parts": [{"kind": "ewma", "alpha": 0.01}, ...]}

``anomalake tune`` saves such a configuration; a use case's detector set deploys it by
naming the file (``tuned: docs/tuned/nab.json``) or by writing it inline.

:func:`build` turns a configuration into a :class:`Node`: ``update(x, t)`` scores one
observation (a number, or a vector for the multivariate kinds; ``t`` is the event time in
seconds, read by the time-based kinds) and ``state()`` is JSON-able, so
``build(config, node.state())`` is the node again, scoring bit for bit as if it had never
stopped (the speed layer keeps it in Spark's state store between micro-batches).

Every score is finite and in [0, 1]: a detector whose state an extreme value made
non-finite (say 1e200 squared) is reset to its initial state by its node, which scores
that observation 0 and learns again from the next one (:meth:`Leaf.update`); a non-finite
observation scores 0 and is not learnt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from anomalake.detection.multivariate import EwmaT2, HotellingT2, MewmaT2
from anomalake.detection.state import JsonState
from anomalake.detection.univariate import (
    CountSpike,
    EwmaBand,
    ForecastErrorChange,
    HoldFilter,
    PageHinkley,
    PeakFilter,
    RollingZScore,
    ThresholdDuration,
    WindowCount,
    combine,
)
from anomalake.errors import AnomalakeError

#: What a kind reads: ``value`` one number, ``vector`` several, ``time`` the event time
#: only, ``value_time`` one number and the event time.
Input = Literal["value", "vector", "time", "value_time"]


@dataclass(frozen=True)
class Kind:
    """A detector class and what it reads."""

    cls: type[JsonState]
    reads: Input


#: The detectors, by kind.
DETECTORS: dict[str, Kind] = {
    "rolling_z": Kind(RollingZScore, "value"),
    "ewma": Kind(EwmaBand, "value"),
    "page_hinkley": Kind(PageHinkley, "value"),
    "forecast_error_change": Kind(ForecastErrorChange, "value"),
    "count_spike": Kind(CountSpike, "value"),
    "threshold_duration": Kind(ThresholdDuration, "value_time"),
    "count": Kind(WindowCount, "time"),
    "hotelling_t2": Kind(HotellingT2, "vector"),
    "ewma_t2": Kind(EwmaT2, "vector"),
    "mewma_t2": Kind(MewmaT2, "vector"),
}
#: Filters of another detector's scores (``of``).
FILTERS: dict[str, type[JsonState]] = {"peak": PeakFilter, "hold": HoldFilter}
#: Every kind a configuration may name.
KINDS: tuple[str, ...] = (*DETECTORS, *FILTERS, "combine")


class Node(Protocol):
    """A built detector configuration."""

    def update(self, x: Any, t: float) -> float:
        """Score one observation at event time ``t`` (seconds), then learn it."""
        ...

    def state(self) -> Any:
        """JSON-able state; :func:`build` with it restores this node."""
        ...


def _finite_unit(score: float) -> float | None:
    """``score`` if it is a number in [0, 1], else None."""
    return float(score) if math.isfinite(score) and 0.0 <= score <= 1.0 else None


@dataclass
class Leaf:
    """One detector of :data:`DETECTORS` and what it reads."""

    detector: Any
    kind: Kind
    params: Mapping[str, Any]

    def update(self, x: Any, t: float) -> float:
        """The detector's score; a detector left broken by ``x`` starts afresh (score 0)."""
        det = self.detector
        reads = self.kind.reads
        if reads != "time" and not np.isfinite(x).all():
            return 0.0  # validation keeps these out; a detector never learns one
        if reads == "value":
            score = det.update(float(x))
        elif reads == "value_time":
            score = det.update(float(x), t)
        elif reads == "time":
            score = det.update(t)
        else:
            score = det.update(np.asarray(x, dtype=float))
        checked = _finite_unit(score)
        if checked is None or not det.finite():
            self.detector = self.kind.cls(**self.params)
            return 0.0
        return checked

    def state(self) -> Any:
        """The detector's state."""
        return self.detector.state()


@dataclass
class Filtered:
    """A filter of another node's scores."""

    source: Node
    filter: Any

    def update(self, x: Any, t: float) -> float:
        """The filtered score of the source's score."""
        return float(self.filter.update(self.source.update(x, t)))

    def state(self) -> Any:
        """The source's state and the filter's."""
        return {"of": self.source.state(), "filter": self.filter.state()}


@dataclass
class Combined:
    """Several nodes' scores combined (:func:`~anomalake.detection.univariate.combine`)."""

    parts: list[Node]
    how: str
    weights: list[float] | None

    def update(self, x: Any, t: float) -> float:
        """The combination of every part's score."""
        return combine([p.update(x, t) for p in self.parts], self.weights, self.how)

    def state(self) -> Any:
        """Every part's state, in order."""
        return [p.state() for p in self.parts]


def _params(config: Mapping[str, Any], *skip: str) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("kind", *skip)}


def _bad(config: Mapping[str, Any], why: object) -> AnomalakeError:
    return AnomalakeError(
        f"bad detector configuration {dict(config)!r}: {why}",
        "see anomalake/detection/registry.py for the kinds and their parameters",
    )


def build(config: Mapping[str, Any], state: Any = None) -> Node:
    """The node of ``config``: fresh, or restored from ``state`` (:meth:`Node.state`)."""
    if not isinstance(config, Mapping):
        raise _bad({"config": config}, "not a mapping")
    kind = config.get("kind")
    try:
        if kind in DETECTORS:
            k, params = DETECTORS[kind], _params(config)
            fresh = k.cls(**params)
            det = fresh if state is None else k.cls.from_state(state)
            return Leaf(det, k, params)
        if kind in FILTERS:
            cls, params = FILTERS[kind], _params(config, "of")
            source = build(config["of"], None if state is None else state["of"])
            flt = cls(**params) if state is None else cls.from_state(state["filter"])
            return Filtered(source, flt)
        if kind == "combine":
            parts = config["parts"]
            if not isinstance(parts, list) or not parts:
                raise _bad(config, "parts must be a non-empty list")
            states = [None] * len(parts) if state is None else state
            how = config.get("how", "max")
            if how not in ("max", "mean"):
                raise _bad(config, "how is max or mean")
            weights = config.get("weights")
            if weights is not None and len(weights) != len(parts):
                raise _bad(config, "one weight per part")
            nodes = [build(p, s) for p, s in zip(parts, states, strict=True)]
            return Combined(nodes, how, weights)
    except AnomalakeError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(config, exc) from None
    raise AnomalakeError(f"unknown detector kind {kind!r}", f"use one of {', '.join(KINDS)}")


def reads(config: Mapping[str, Any]) -> set[Input]:
    """What the detectors of ``config`` read (a combination may read several things)."""
    kind = config.get("kind")
    if kind in DETECTORS:
        return {DETECTORS[kind].reads}
    if kind in FILTERS:
        return reads(config["of"])
    if kind == "combine":
        return set().union(*(reads(p) for p in config.get("parts", [])))
    raise AnomalakeError(f"unknown detector kind {kind!r}", f"use one of {', '.join(KINDS)}")


def multivariate(config: Mapping[str, Any]) -> bool:
    """Whether the detector takes vectors rather than numbers."""
    return "vector" in reads(config)


def describe(config: Mapping[str, Any]) -> str:
    """A one-line name, e.g. ``peak(window=100) of rolling_z(window=1000, warmup=50)``."""
    kind = config.get("kind", "?")
    if kind == "combine":
        inner = ", ".join(describe(p) for p in config.get("parts", []))
        return f"{config.get('how', 'max')}({inner})"
    args = ", ".join(f"{k}={v}" for k, v in _params(config, "of").items())
    text = f"{kind}({args})"
    return f"{text} of {describe(config['of'])}" if "of" in config else text


def scorer(config: Mapping[str, Any]) -> Callable[[], Callable[[Any], float]]:
    """A factory of fresh ``update(x)`` functions, for evaluation over series without time.

    Kinds that read the event time are refused: a series scored by position has none.
    """
    needs_time = reads(config) & {"time", "value_time"}
    if needs_time:
        raise AnomalakeError(
            f"{describe(config)} reads event time, which evaluation by position has not",
            "evaluate it in a detector set over timed records",
        )
    build(config)  # a bad parameter fails now, not inside the first file

    def fresh() -> Callable[[Any], float]:
        node = build(config)
        return lambda x: node.update(x, 0.0)

    return fresh
