"""A set of detectors an entity runs, declared in YAML and combined into one score.

The speed layer keeps one :class:`DetectorSet` per key in Spark's state store, batch
backfills and offline replays build one per key from an empty state, and all of them
feed it the same readings in the same order — so they give the same scores.

```yaml
threshold: 0.999            # a combined score above this is an anomaly
combine: max                # or: mean (weighted by each detector's ``weight``)
detectors:
  - {name: vector, kind: hotelling_t2, fields: all, params: {warmup: 400}}
  - {name: temperature, kind: ewma, field: Temperature, params: {alpha: 0.02}}
  - {name: flow_sma, kind: rolling_z, field: Volume Flow RateRMS, params: {window: 120}}
  - {name: pressure_low, kind: threshold_duration, field: Pressure,
     params: {low: 0.0, duration: 30}}
  - {name: current_drift, kind: forecast_error_change, field: Current}
  - {name: readings_per_minute, kind: count, params: {window_seconds: 60}}
rules:                      # spark.detectors.rules: each fired rule is its own detection
  - {name: overheating, severity: high, all: [{field: Temperature, op: ">", value: 90}]}
```

Kinds: ``rolling_z`` (simple moving average and its standard-deviation band), ``ewma``
(exponentially weighted band), ``threshold_duration``, ``page_hinkley`` (on the raw field),
``forecast_error_change`` (Page-Hinkley on the absolute errors of an EWMA one-step
forecast: change detection on a model's prediction errors), ``count`` (readings per
event-time window against their usual rate), ``hotelling_t2`` (the sensor vector against
its first readings) and ``ewma_t2`` (against exponentially weighted estimates). Each
detector's parameters, warm-up and memory are documented on its class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from anomalake.alerts.lifecycle import SEVERITIES
from anomalake.errors import AnomalakeError
from spark.detectors.multivariate import EwmaT2, HotellingT2
from spark.detectors.rules import Rule, fired, parse_rules
from spark.detectors.state import JsonState
from spark.detectors.univariate import (
    CountSpike,
    EwmaBand,
    PageHinkley,
    RollingZScore,
    ThresholdDuration,
    combine,
)


@dataclass
class ForecastErrorChange(JsonState):
    """Change detection on a model's prediction errors: Page-Hinkley on ``|x - forecast|``.

    The model is an EWMA one-step forecast (``alpha``); the absolute errors, divided by
    their own long-run mean so the test is scale-free, feed a :class:`PageHinkley` test for
    an increase. Warm-up: ``warmup`` readings. Memory: six numbers.
    """

    alpha: float = 0.1
    delta: float = 0.05
    threshold: float = 30.0
    warmup: int = 100
    forecast: float | None = None
    error_scale: float = 0.0
    n: int = 0
    test: PageHinkley = field(default_factory=PageHinkley)

    _nested: ClassVar[dict[str, type[JsonState]]] = {"test": PageHinkley}

    def __post_init__(self) -> None:
        if self.test.n == 0 and self.test.cumulative == 0.0:
            self.test = PageHinkley(delta=self.delta, threshold=self.threshold, warmup=0)

    def update(self, x: float) -> float:
        """Score the error of the forecast of ``x``, then update the forecast."""
        if self.forecast is None:
            self.forecast = x
            self.n = 1
            return 0.0
        error = abs(x - self.forecast)
        self.forecast += self.alpha * (x - self.forecast)
        self.n += 1
        self.error_scale += (error - self.error_scale) / min(self.n, self.warmup)
        if self.n <= self.warmup:
            return 0.0
        return self.test.update(error / self.error_scale if self.error_scale > 1e-12 else 0.0)


@dataclass
class WindowCount(JsonState):
    """Readings per event-time window of ``window_seconds``, scored by :class:`CountSpike`.

    A reading that opens a new window closes the previous one and the empty windows in
    between (at most ``max_gap_windows`` of them, as dips to zero), and carries the score of
    the windows it closed. Memory: the open window and a :class:`CountSpike`.
    """

    window_seconds: float = 60.0
    alpha: float = 0.1
    warmup: int = 10
    max_gap_windows: int = 60
    window: int | None = None
    count: int = 0
    spike: CountSpike = field(default_factory=CountSpike)

    _nested: ClassVar[dict[str, type[JsonState]]] = {"spike": CountSpike}

    def __post_init__(self) -> None:
        if self.spike.n == 0:
            self.spike = CountSpike(alpha=self.alpha, warmup=self.warmup)

    def update(self, t: float) -> float:
        """Count a reading at event time ``t`` (seconds)."""
        index = math.floor(t / self.window_seconds)
        if self.window is None:
            self.window, self.count = index, 1
            return 0.0
        if index <= self.window:
            self.count += 1
            return 0.0
        score = self.spike.update(self.count)
        for _ in range(min(index - self.window - 1, self.max_gap_windows)):
            score = max(score, self.spike.update(0))
        self.window, self.count = index, 1
        return score


#: kind -> (class, input): ``value`` one field, ``vector`` several, ``time`` event time only,
#: ``value_time`` one field and the event time.
KINDS: dict[str, tuple[Any, str]] = {
    "rolling_z": (RollingZScore, "value"),
    "ewma": (EwmaBand, "value"),
    "page_hinkley": (PageHinkley, "value"),
    "forecast_error_change": (ForecastErrorChange, "value"),
    "threshold_duration": (ThresholdDuration, "value_time"),
    "count": (WindowCount, "time"),
    "hotelling_t2": (HotellingT2, "vector"),
    "ewma_t2": (EwmaT2, "vector"),
}


@dataclass(frozen=True)
class DetectorSpec:
    """One configured detector: its name, kind, input field(s), parameters and weight."""

    name: str
    kind: str
    fields: tuple[str, ...]
    params: Mapping[str, Any]
    weight: float = 1.0

    def build(self) -> Any:
        """A fresh detector of this spec."""
        return KINDS[self.kind][0](**self.params)


@dataclass(frozen=True)
class DetectorSetConfig:
    """Detectors, rules, how their scores combine and the anomaly threshold."""

    detectors: tuple[DetectorSpec, ...]
    rules: tuple[Rule, ...] = ()
    threshold: float = 0.999
    how: str = "max"

    @classmethod
    def from_yaml(cls, text: str, fields: tuple[str, ...]) -> DetectorSetConfig:
        """Parse the YAML; ``fields`` are the record's numeric fields (``all`` means them)."""
        doc = yaml.safe_load(text) or {}
        specs = []
        for item in doc.get("detectors", []):
            name, kind = item.get("name"), item.get("kind")
            if not name or kind not in KINDS:
                raise AnomalakeError(
                    f"detector {item}: needs a name and a kind",
                    f"kind is one of {', '.join(KINDS)}",
                )
            chosen = item.get("fields", item.get("field"))
            names = (
                fields
                if chosen in (None, "all")
                else ((chosen,) if isinstance(chosen, str) else tuple(chosen))
            )
            unknown = [f for f in names if f not in fields]
            if unknown:
                raise AnomalakeError(
                    f"detector {name!r} reads unknown fields {unknown}",
                    f"use fields of the records: {', '.join(fields)}",
                )
            spec = DetectorSpec(
                name, kind, names, dict(item.get("params", {})), item.get("weight", 1)
            )
            try:
                spec.build()
            except TypeError as exc:
                raise AnomalakeError(
                    f"detector {name!r}: bad params {spec.params}", str(exc)
                ) from exc
            specs.append(spec)
        if doc.get("combine", "max") not in ("max", "mean"):
            raise AnomalakeError("combine must be max or mean", "fix the detectors YAML")
        rules = tuple(parse_rules(yaml.safe_dump({"rules": doc.get("rules", [])})))
        for rule in rules:
            if rule.severity not in SEVERITIES:
                raise AnomalakeError(
                    f"rule {rule.name!r}: unknown severity {rule.severity!r}",
                    f"use one of {', '.join(SEVERITIES)}",
                )
        return cls(
            tuple(specs), rules, float(doc.get("threshold", 0.999)), doc.get("combine", "max")
        )

    @classmethod
    def from_file(cls, path: Path, fields: tuple[str, ...]) -> DetectorSetConfig:
        """Parse a YAML file (an unreadable one is an error naming it)."""
        if not path.exists():
            raise AnomalakeError(f"no detectors config {path}", "set the detectors_config path")
        return cls.from_yaml(path.read_text(), fields)


@dataclass(frozen=True)
class Detection:
    """One reading's scores: per detector, combined, and what fired."""

    score: float
    scores: dict[str, float]
    anomaly: bool
    rules: tuple[str, ...]


class DetectorSet:
    """The configured detectors of one entity, with a JSON-able state."""

    def __init__(self, config: DetectorSetConfig, detectors: list[Any] | None = None) -> None:
        self.config = config
        self.detectors = detectors or [spec.build() for spec in config.detectors]

    def update(self, record: Mapping[str, float], t: float) -> Detection:
        """Score one reading (``record`` maps field -> value) at event time ``t`` seconds."""
        scores = {}
        for spec, det in zip(self.config.detectors, self.detectors, strict=True):
            scores[spec.name] = _feed(det, KINDS[spec.kind][1], spec.fields, record, t)
        weights = [spec.weight for spec in self.config.detectors]
        total = combine(list(scores.values()), weights, self.config.how) if scores else 0.0
        rules = tuple(fired(list(self.config.rules), record))
        return Detection(total, scores, total > self.config.threshold, rules)

    def state(self) -> list[dict[str, Any]]:
        """Every detector's state, in config order."""
        return [det.state() for det in self.detectors]

    @classmethod
    def from_state(cls, config: DetectorSetConfig, state: list[dict[str, Any]]) -> DetectorSet:
        """Rebuild from :meth:`state` with the same config."""
        return cls(
            config,
            [
                KINDS[spec.kind][0].from_state(s)
                for spec, s in zip(config.detectors, state, strict=True)
            ],
        )


def _feed(
    det: Any, how: str, names: tuple[str, ...], record: Mapping[str, float], t: float
) -> float:
    update: Callable[..., float] = det.update
    if how == "value":
        return update(record[names[0]])
    if how == "value_time":
        return update(record[names[0]], t)
    if how == "time":
        return update(t)
    return update(np.array([record[n] for n in names], dtype=float))
