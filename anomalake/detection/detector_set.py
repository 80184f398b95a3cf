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
rules:                      # anomalake.detection.rules: each fired rule is its own detection
  - {name: overheating, severity: high, all: [{field: Temperature, op: ">", value: 90}]}
```

Kinds are those of the one registry (:mod:`anomalake.detection.registry`), which ``eval``
and ``tune`` use too: ``rolling_z`` (simple moving average and its standard-deviation
band), ``ewma`` (exponentially weighted band), ``threshold_duration``, ``page_hinkley`` (on
the raw field), ``forecast_error_change`` (Page-Hinkley on the absolute errors of an EWMA
one-step forecast), ``count`` (readings per event-time window against their usual rate),
``hotelling_t2``, ``ewma_t2`` and ``mewma_t2`` (the sensor vector), the filters ``peak``
and ``hold`` and ``combine``. A configuration ``anomalake tune`` saved is deployed by
naming its file: ``{name: value, field: value, tuned: docs/tuned/nab.json}``. Each
detector's parameters, warm-up and memory are documented on its class.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from anomalake.alerts.lifecycle import SEVERITIES
from anomalake.detection import registry
from anomalake.detection.rules import Rule, fired, parse_rules
from anomalake.detection.univariate import combine
from anomalake.errors import AnomalakeError
from anomalake.settings import PROJECT_ROOT


@dataclass(frozen=True)
class DetectorSpec:
    """One configured detector: its name, configuration (the registry's), input fields, weight."""

    name: str
    config: Mapping[str, Any]
    fields: tuple[str, ...]
    weight: float = 1.0

    @property
    def vector(self) -> bool:
        """Whether the detector reads its fields as one vector."""
        return registry.multivariate(self.config)

    def build(self, state: Any = None) -> registry.Node:
        """A fresh detector of this spec, or one restored from ``state``."""
        return registry.build(self.config, state)


def _config(item: Mapping[str, Any], base: Path | None) -> Mapping[str, Any]:
    """The registry configuration of a YAML entry: inline, from a tuned file, or kind+params."""
    if "tuned" in item:
        path = Path(item["tuned"])
        if not path.is_absolute():
            path = (base or PROJECT_ROOT) / path
            if not path.exists():
                path = PROJECT_ROOT / item["tuned"]
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise AnomalakeError(
                f"detector {item.get('name')!r}: cannot read tuned config {path}: {exc}",
                "name a file written by `anomalake tune`",
            ) from None
        if not isinstance(saved, dict) or not isinstance(saved.get("detector"), dict):
            raise AnomalakeError(
                f"{path} has no 'detector' configuration", "name a file written by `anomalake tune`"
            )
        return saved["detector"]
    if "detector" in item:
        return dict(item["detector"])
    return {"kind": item.get("kind"), **dict(item.get("params", {}))}


@dataclass(frozen=True)
class DetectorSetConfig:
    """Detectors, rules, how their scores combine and the anomaly threshold."""

    detectors: tuple[DetectorSpec, ...]
    rules: tuple[Rule, ...] = ()
    threshold: float = 0.999
    how: str = "max"

    @classmethod
    def from_yaml(
        cls, text: str, fields: tuple[str, ...], base: Path | None = None
    ) -> DetectorSetConfig:
        """Parse the YAML; ``fields`` are the record's numeric fields (``all`` means them).

        A detector is ``kind`` with ``params``, an inline registry configuration under
        ``detector``, or ``tuned``: the path of a file ``anomalake tune`` wrote (relative
        to ``base``, the YAML's folder, or else to the project).
        """
        doc = yaml.safe_load(text) or {}
        specs = []
        for item in doc.get("detectors", []):
            name = item.get("name")
            if not name:
                raise AnomalakeError(f"detector {item}: needs a name", "name every detector")
            config = _config(item, base)
            try:
                reads = registry.reads(config)
                registry.build(config)
            except AnomalakeError as exc:
                raise AnomalakeError(f"detector {name!r}: {exc.cause}", exc.fix) from None
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
            if "vector" in reads and reads & {"value", "value_time"}:
                raise AnomalakeError(
                    f"detector {name!r} mixes vector and single-value kinds",
                    "combine detectors that read the same input",
                )
            if reads & {"value", "value_time"} and len(names) != 1:
                raise AnomalakeError(
                    f"detector {name!r} reads one field, not {len(names)}",
                    "give it one `field`",
                )
            specs.append(DetectorSpec(name, config, names, float(item.get("weight", 1))))
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
        return cls.from_yaml(path.read_text(), fields, path.parent)


@dataclass(frozen=True)
class Detection:
    """One reading's scores: per detector, combined, and what fired."""

    score: float
    scores: dict[str, float]
    anomaly: bool
    rules: tuple[str, ...]


class DetectorSet:
    """The configured detectors of one entity, with a JSON-able state."""

    def __init__(
        self, config: DetectorSetConfig, detectors: list[registry.Node] | None = None
    ) -> None:
        self.config = config
        self.detectors = detectors or [spec.build() for spec in config.detectors]

    def update(self, record: Mapping[str, float], t: float) -> Detection:
        """Score one reading (``record`` maps field -> value) at event time ``t`` seconds."""
        scores = {}
        for spec, det in zip(self.config.detectors, self.detectors, strict=True):
            if spec.vector:
                x: Any = np.array([record[n] for n in spec.fields], dtype=float)
            else:
                x = record[spec.fields[0]] if spec.fields else 0.0
            scores[spec.name] = det.update(x, t)
        weights = [spec.weight for spec in self.config.detectors]
        total = combine(list(scores.values()), weights, self.config.how) if scores else 0.0
        rules = tuple(fired(list(self.config.rules), record))
        return Detection(total, scores, total > self.config.threshold, rules)

    def state(self) -> list[Any]:
        """Every detector's state, in config order."""
        return [det.state() for det in self.detectors]

    @classmethod
    def from_state(cls, config: DetectorSetConfig, state: list[Any]) -> DetectorSet:
        """Rebuild from :meth:`state` with the same config."""
        return cls(config, [spec.build(s) for spec, s in zip(config.detectors, state, strict=True)])
