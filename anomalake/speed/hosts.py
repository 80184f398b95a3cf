"""The hosts use case's step, engine-free: ToN-IoT rows typed, validated and scored.

Each Kafka value is typed by the loader's own :func:`anomalake.loaders.toniot.type_rows`
(missing fields, a ``ts`` that is not Unix seconds, a bad label, a payload that is not a
JSON object: each a reason), then scored by a model (``models:/<name>@champion``, handed
in by the engine as a function of the typed rows). It keeps no state: the generic speed
layer calls :class:`HostsStep` per host and micro-batch, the backtest over stored events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from anomalake.loaders.toniot import LAYOUTS, TEXT_COLUMNS, type_rows
from anomalake.speed.guard import failure_reason, guarded
from anomalake.speed.records import KAFKA_COLUMNS, ORIGINS
from anomalake.speed.step import KAFKA_OUTPUT, Column, Detections, EntityStep, columns
from anomalake.usecases.spec import RecordLimits

if TYPE_CHECKING:
    from anomalake.settings import Settings

#: Typed rows -> the same rows' ``score``, ``prediction``, ``model_name``, ``model_version``.
Scorer = Callable[[pd.DataFrame], pd.DataFrame]


def scored_columns(activity: str) -> tuple[Column, ...]:
    """The columns of a scored (or quarantined) event of ``activity``."""
    metrics = tuple(
        Column(c, "string" if c in TEXT_COLUMNS else "double") for c in LAYOUTS[activity]
    )
    return (
        *columns(
            ("host", "string"), ("activity", "string"), ("ts", "timestamp"), ("PID", "bigint")
        ),
        *metrics,
        *columns(
            ("label", "int"),
            ("origin", "string"),
            ("score", "double"),
            ("prediction", "boolean"),
            ("model_name", "string"),
            ("model_version", "string"),
            ("reason", "string"),
            ("raw_value", "string"),
            *KAFKA_OUTPUT,
        ),
    )


def type_and_score(
    batch: pd.DataFrame,
    activity: str,
    score: Scorer,
    limits: RecordLimits | None = None,
) -> pd.DataFrame:
    """Kafka values (``raw_value`` and the Kafka columns) of one activity, typed and scored.

    No record can make it raise: if the batch fails, each record is taken alone, and one
    that fails is quarantined with the error as its reason
    (:func:`anomalake.speed.guard.guarded`; the step keeps no state).
    """
    names = [c.name for c in scored_columns(activity)]

    def reject(record: pd.DataFrame, error: BaseException) -> pd.DataFrame:
        row = dict.fromkeys(names)
        row.update(
            activity=activity,
            reason=failure_reason(error),
            raw_value=record["raw_value"].iloc[0],
            **{k: record[k].iloc[0] for k in KAFKA_COLUMNS if k in record},
        )
        return pd.DataFrame([row], columns=names)

    return guarded(
        None,
        batch,
        restore=lambda _: None,
        dump=lambda _: "",
        step=lambda _, part: _type_and_score(part, activity, score, limits)[names],
        reject=reject,
    )[1]


def _type_and_score(
    batch: pd.DataFrame, activity: str, score: Scorer, limits: RecordLimits | None
) -> pd.DataFrame:
    values = [_object(v) for v in batch["raw_value"]]
    raw = pd.DataFrame.from_records(
        [v or {} for v in values],
        index=batch.index,
        columns=["host", "ts", "PID", *LAYOUTS[activity], "label", "type"],
    )
    raw = raw.map(lambda x: None if x is None else str(x))
    typed, reasons = type_rows(raw, activity, limits)
    pattern = (limits or RecordLimits()).entity_pattern
    host_problem = [
        "missing field host"
        if h is None
        else (None if re.match(pattern, h) else f"host {h[:40]!r} is not an entity id")
        for h in raw["host"]
    ]
    origins = [(v or {}).get("origin", "live") for v in values]
    origin_problem = [None if o in ORIGINS else f"unknown origin: {str(o)[:20]!r}" for o in origins]
    reasons = pd.Series(
        [
            "malformed JSON: not an object"
            if value is None
            else "; ".join(r for r in (host, origin, reason) if r) or None
            for value, host, origin, reason in zip(
                values, host_problem, origin_problem, reasons, strict=True
            )
        ],
        index=batch.index,
        dtype=object,
    )
    out = typed.assign(
        host=raw["host"],
        activity=activity,
        ts=typed["ts"].dt.tz_localize(None),
        label=typed["label"].astype("Int32"),
        origin=[o if p is None else None for o, p in zip(origins, origin_problem, strict=True)],
        reason=reasons,
        raw_value=batch["raw_value"].where(reasons.notna()),
        **{k: batch.get(k) for k in KAFKA_COLUMNS},
    )
    valid = reasons.isna()
    scored = score(typed[valid])
    for col in ("score", "prediction", "model_name", "model_version"):
        out[col] = None
        out.loc[valid, col] = scored[col]
    return out


def _object(value: Any) -> dict[str, Any] | None:
    try:
        parsed = json.loads(value) if value is not None else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


class HostsStep(EntityStep):
    """One activity's events typed and scored by the champion; no state between batches."""

    entity = "host"
    event_time = "ts"
    stateful = False
    orders = ("unordered",)

    def __init__(self, activity: str, score: Scorer, limits: RecordLimits | None) -> None:
        self.activity = activity
        self.score = score
        self.limits = limits
        self.columns = scored_columns(activity)
        self.detections = Detections(
            score="score",
            anomaly="prediction",
            anomaly_rule=f"{activity}_attack",
            details=(
                "activity",
                "PID",
                "score",
                "model_name",
                "model_version",
                "topic",
                "partition",
                "offset",
            ),
        )

    @classmethod
    def from_settings(cls, settings: Settings, stream: str | None, model: Any) -> HostsStep:
        """The step of activity ``stream``, scoring with ``model`` (typed rows -> scores)."""
        if stream is None or model is None:
            raise ValueError("the hosts step needs its activity and the champion's scorer")
        return cls(stream, model, settings.hosts.limits)

    def run(
        self, stored: str | None, records: pd.DataFrame, *, keyed: bool, flush: bool = False
    ) -> tuple[str | None, pd.DataFrame]:
        """The records typed and scored (:func:`type_and_score`); nothing is stored."""
        del stored, keyed, flush
        return None, type_and_score(records, self.activity, self.score, self.limits)
