"""The infra use case's per-asset step, without an engine: parse, validate, score.

The generic speed layer (``spark.streams.speed``) calls :class:`InfraStep` (that is,
:func:`guarded_records`) per asset from Spark's state store, the backfill calls
:func:`score_readings` over stored readings, and offline replay and evaluation call
:func:`score_messages` — one step, so one set of scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from anomalake.detection.detector_set import DetectorSet, DetectorSetConfig
from anomalake.producer import SCHEMA_VERSION
from anomalake.settings import Settings
from anomalake.speed.guard import failure_reason, guarded
from anomalake.speed.records import (
    KAFKA_COLUMNS,
    envelope_problems,
    epoch_seconds,
    event_time_problems,
    json_object,
)
from anomalake.speed.step import KAFKA_OUTPUT, Detections, EntityStep, columns
from anomalake.usecases.spec import RecordLimits

#: A scored (or rejected) reading, in the stream's output order, with its types.
SCORED = columns(
    ("asset", "string"),
    ("event_time", "timestamp"),
    ("values", "array<double>"),
    ("origin", "string"),
    ("score", "double"),
    ("scores", "map<string,double>"),
    ("anomaly", "boolean"),
    ("rules", "array<string>"),
    ("reason", "string"),
    ("raw_value", "string"),
    *KAFKA_OUTPUT,
)
#: The columns of a scored (or rejected) record, in the stream's output order.
COLUMNS = tuple(c.name for c in SCORED)


@dataclass
class Reading:
    """A valid reading: the asset, event time (epoch seconds), sensor values and origin."""

    asset: str
    t: float
    values: list[float]
    origin: str


def parse_reading(
    raw: str | None,
    key: str | None,
    sensors: tuple[str, ...],
    max_payload_bytes: int,
    limits: RecordLimits | None = None,
    kafka_time: float | None = None,
) -> tuple[Reading | None, str | None]:
    """A Kafka value as a :class:`Reading`, or ``None`` and every reason it is not one.

    ``limits`` bound the asset id, the event time (also against ``kafka_time``, the
    record's Kafka timestamp in seconds, when known) and the sensor values.
    """
    limits = limits or RecordLimits()
    doc, reason = json_object(raw, max_payload_bytes)
    if doc is None:
        return None, reason
    problems = envelope_problems(doc, "asset", key, SCHEMA_VERSION, limits)
    t = _seconds(doc.get("timestamp"))
    if doc.get("timestamp") is None:
        problems.append("missing field timestamp")
    elif t is None:
        problems.append(f"unparsable timestamp: {str(doc.get('timestamp'))[:40]!r}")
    else:
        problems += event_time_problems(t, doc["timestamp"], limits, kafka_time)
    values = []
    for name in sensors:
        value = doc.get(name)
        if value is None:
            problems.append(f"missing field {name}")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"bad type for {name}: {str(value)[:40]!r}")
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"non-finite {name}")
        elif abs(value) > limits.max_abs_value:
            problems.append(f"{name} out of range: {str(value)[:40]}")
        else:
            values.append(float(value))
    if problems:
        return None, "; ".join(problems)
    assert t is not None
    return Reading(doc["asset"], t, values, str(doc.get("origin", "live"))), None


def _seconds(text: Any) -> float | None:
    """Epoch seconds of an ISO-8601 time (a time without an offset is UTC)."""
    if not isinstance(text, str):
        return None
    try:
        stamp = datetime.fromisoformat(text)
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        return None


@dataclass
class AssetState:
    """What the state store keeps per asset: the last reading's time and the detectors."""

    detectors: DetectorSet
    last_t: float | None = None
    readings: int = 0

    def to_json(self) -> str:
        """Serialise for the state store (floats round-trip exactly)."""
        return json.dumps(
            {"d": self.detectors.state(), "t": self.last_t, "n": self.readings},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, config: DetectorSetConfig, text: str) -> AssetState:
        """Restore from :meth:`to_json`."""
        doc = json.loads(text)
        return cls(DetectorSet.from_state(config, doc["d"]), doc["t"], doc["n"])

    @classmethod
    def fresh(cls, config: DetectorSetConfig) -> AssetState:
        """The state of an asset never seen."""
        return cls(DetectorSet(config))


def score_readings(
    state: AssetState, readings: Iterable[Reading], sensors: tuple[str, ...]
) -> Iterator[tuple[Reading, dict[str, Any]]]:
    """The asset's readings, in arrival order, through its detectors: the shared step.

    Yields each reading with either its scores (``score``, ``scores``, ``anomaly``,
    ``rules``) or a ``reason`` when its time does not move forward.
    """
    for r in readings:
        if state.last_t is not None and r.t <= state.last_t:
            kind = "repeated time" if r.t == state.last_t else "out of order"
            yield r, {"reason": f"{kind}: not after the asset's last reading"}
            continue
        detection = state.detectors.update(dict(zip(sensors, r.values, strict=True)), r.t)
        state.last_t = r.t
        state.readings += 1
        yield (
            r,
            {
                "score": detection.score,
                "scores": detection.scores,
                "anomaly": detection.anomaly,
                "rules": list(detection.rules),
                "reason": None,
            },
        )


def _row(
    record: Mapping[str, Any], reading: Reading | None, scored: Mapping[str, Any]
) -> dict[str, Any]:
    base = {
        "asset": reading.asset if reading else None,
        # to the microsecond, rounded (Arrow would truncate): the stored time reads back as t
        "event_time": pd.Timestamp(round(reading.t * 1e6), unit="us") if reading else None,
        "values": reading.values if reading else None,
        "origin": reading.origin if reading else None,
        "score": None,
        "scores": None,
        "anomaly": None,
        "rules": None,
        **scored,
        **{f: record.get(f) for f in KAFKA_COLUMNS},
    }
    base["raw_value"] = record.get("raw_value") if base.get("reason") else None
    return base


def score_records(
    state: AssetState | None,
    records: pd.DataFrame,
    sensors: tuple[str, ...],
    max_payload_bytes: int,
    limits: RecordLimits | None = None,
) -> pd.DataFrame:
    """One key's Kafka records (``raw_value``, key, topic, partition, offset, ...) scored.

    Parsing and :func:`score_readings` in offset order; with ``state`` None (no key) every
    record is validated but none can be scored, so valid ones are quarantined for that.
    """
    rows = []
    ordered = records.sort_values(["partition", "offset"], kind="stable")
    for record in ordered.to_dict("records"):
        reading, reason = parse_reading(
            record["raw_value"],
            record.get("key"),
            sensors,
            max_payload_bytes,
            limits,
            epoch_seconds(record.get("kafka_timestamp")),
        )
        if reading is None or state is None:
            reason = reason or "no record key: readings are keyed by asset"
            rows.append(_row(record, None, {"reason": reason}))
            continue
        for r, scored in score_readings(state, [reading], sensors):
            rows.append(_row(record, r, scored))
    return pd.DataFrame.from_records(rows, columns=list(COLUMNS))


def guarded_records(
    stored: str | None,
    config: DetectorSetConfig,
    records: pd.DataFrame,
    sensors: tuple[str, ...],
    max_payload_bytes: int,
    limits: RecordLimits | None = None,
    *,
    keyed: bool = True,
) -> tuple[AssetState | None, pd.DataFrame]:
    """:func:`score_records` from the stored state; a record it raises on is quarantined.

    Through :func:`anomalake.speed.guard.guarded`: the asset's state is never changed by
    a record that fails. ``keyed`` false: records without a key (validated, not scored).
    """

    def restore(text: str | None) -> AssetState | None:
        if not keyed:
            return None
        return AssetState.from_json(config, text) if text else AssetState.fresh(config)

    def reject(record: pd.DataFrame, error: BaseException) -> pd.DataFrame:
        row = _row(record.iloc[0].to_dict(), None, {"reason": failure_reason(error)})
        return pd.DataFrame.from_records([row], columns=list(COLUMNS))

    return guarded(
        stored,
        records.sort_values(["partition", "offset"], kind="stable"),
        restore=restore,
        dump=lambda state: state.to_json() if state is not None else "",
        step=lambda state, part: score_records(state, part, sensors, max_payload_bytes, limits),
        reject=reject,
    )


def score_messages(
    messages: Iterable[tuple[str | None, bytes]],
    settings: Settings,
    config: DetectorSetConfig,
) -> pd.DataFrame:
    """Offline replay: the producer's messages scored without Kafka or Spark, same step.

    Every message comes out once, scored or with its reason (a message without a key
    too); bytes that are not UTF-8 are quarantined as such, as in the stream.
    """
    i = settings.infra
    frame = pd.DataFrame(
        [
            {
                "key": k,
                "raw_value": v.decode(errors="replace"),
                "topic": "",
                "partition": 0,
                "offset": n,
            }
            for n, (k, v) in enumerate(messages)
        ],
        columns=["key", "raw_value", "topic", "partition", "offset"],
    )
    parts = [
        guarded_records(
            None,
            config,
            group,
            i.sensors,
            i.max_payload_bytes,
            i.limits,
            keyed=isinstance(key, str),
        )[1]
        for key, group in frame.groupby("key", sort=True, dropna=False)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(COLUMNS))


def load_config(settings: Settings) -> DetectorSetConfig:
    """The detector set every asset runs, from the configured YAML."""
    return DetectorSetConfig.from_file(settings.infra_detectors_config, settings.infra.sensors)


class InfraStep(EntityStep):
    """The detector set per asset (:func:`guarded_records`); a silent asset's state is dropped.

    Records are grouped by their Kafka key (the asset): a record whose key and asset
    differ is quarantined, so one asset's readings never reach another's detectors.
    """

    entity = "asset"
    group_by = "key"
    orders = ("strictly_increasing",)
    columns = SCORED

    def __init__(
        self,
        config: DetectorSetConfig,
        sensors: tuple[str, ...],
        max_payload_bytes: int,
        limits: RecordLimits | None,
        ttl_ms: int | None,
    ) -> None:
        self.config = config
        self.sensors = sensors
        self.max_payload_bytes = max_payload_bytes
        self.limits = limits
        self.ttl_ms = ttl_ms
        self.detections = Detections(
            score="score",
            anomaly="anomaly",
            rules="rules",
            rule_severity={r.name: r.severity for r in config.rules},
            details=("score", "scores", "values", "topic", "partition", "offset"),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, stream: str | None = None, model: Any = None
    ) -> InfraStep:
        """The step the infra spec (its detector set, sensors, limits) describes."""
        del stream, model
        i = settings.infra
        return cls(
            load_config(settings),
            i.sensors,
            i.max_payload_bytes,
            i.limits,
            int(i.state_ttl_seconds * 1000),
        )

    def run(
        self, stored: str | None, records: pd.DataFrame, *, keyed: bool, flush: bool = False
    ) -> tuple[str | None, pd.DataFrame]:
        """:func:`guarded_records` from the stored state (nothing is held back to flush)."""
        del flush
        state, out = guarded_records(
            stored,
            self.config,
            records,
            self.sensors,
            self.max_payload_bytes,
            self.limits,
            keyed=keyed,
        )
        return (state.to_json() if state is not None else None), out

    def timeout_ms(self) -> int | None:
        """An asset silent for the state TTL is dropped."""
        return self.ttl_ms
