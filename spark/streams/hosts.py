"""The hosts speed layer: ToN-IoT Linux activity from Kafka, scored by the registry champion.

Per micro-batch (``foreachBatch``):

1. records are typed by the loader's own :func:`anomalake.loaders.toniot.type_rows` inside
   ``mapInPandas``; invalid ones (missing fields, a ``ts`` that is not Unix seconds, a bad
   label, a payload that is not a JSON object) go to the quarantine table with the reason;
2. valid ones are scored in the same pandas function by ``models:/<name>@champion``
   (:class:`ml.serving.ChampionModel`: re-checked every ``model_refresh_seconds``, kept
   when the registry is unreachable) and appended to the scored table with the model name
   and version that scored them;
3. predicted attacks per host and event-time window are recomputed for the windows this
   batch touched, from the scored table, and merged into the counts table.

Appends are marked with (query, batch id) (:class:`~spark.tables.BatchAppender`), so a
batch replayed after a crash is written once; the counts are recomputed, not
incremented, so they are idempotent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from anomalake.loaders.toniot import LAYOUTS, type_rows
from anomalake.settings import RecordLimits, Settings
from anomalake.speed.guard import failure_reason, guarded
from anomalake.speed.records import ORIGINS
from spark.tables import create_if_missing

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

KAFKA = ("topic", "partition", "offset")


def scored_schema(activity: str) -> StructType:
    """Columns of a scored (or quarantined) event of ``activity``."""
    from anomalake.loaders.toniot import LAYOUTS, TEXT_COLUMNS

    metrics = [
        StructField(c, StringType() if c in TEXT_COLUMNS else DoubleType())
        for c in LAYOUTS[activity]
    ]
    return StructType(
        [
            StructField("host", StringType()),
            StructField("activity", StringType()),
            StructField("ts", TimestampType()),
            StructField("PID", LongType()),
            *metrics,
            StructField("label", IntegerType()),
            StructField("origin", StringType()),
            StructField("score", DoubleType()),
            StructField("prediction", BooleanType()),
            StructField("model_name", StringType()),
            StructField("model_version", StringType()),
            StructField("reason", StringType()),
            StructField("raw_value", StringType()),
            StructField("topic", StringType()),
            StructField("partition", IntegerType()),
            StructField("offset", LongType()),
        ]
    )


def score_events(
    batches: Iterator[pd.DataFrame],
    activity: str,
    tracking_uri: str,
    model_name: str,
    refresh_seconds: float,
    limits: RecordLimits | None = None,
) -> Iterator[pd.DataFrame]:
    """Type, validate and score raw Kafka values (the ``mapInPandas`` body)."""
    from ml.serving import champion

    def score(typed: pd.DataFrame) -> pd.DataFrame:
        return champion(tracking_uri, model_name, refresh_seconds).score(typed)

    for batch in batches:
        yield type_and_score(batch, activity, score, limits)


def type_and_score(
    batch: pd.DataFrame,
    activity: str,
    score: Callable[[pd.DataFrame], pd.DataFrame],
    limits: RecordLimits | None = None,
) -> pd.DataFrame:
    """Kafka values of one activity typed, validated and scored by ``score``.

    No record can make it raise: if the batch fails, each record is taken alone, and one
    that fails is quarantined with the error as its reason
    (:func:`anomalake.speed.guard.guarded`; the step keeps no state).
    """
    columns = scored_schema(activity).fieldNames()

    def reject(record: pd.DataFrame, error: BaseException) -> pd.DataFrame:
        row = dict.fromkeys(columns)
        row.update(
            activity=activity,
            reason=failure_reason(error),
            raw_value=record["value"].iloc[0],
            **{k: record[k].iloc[0] for k in KAFKA},
        )
        return pd.DataFrame([row], columns=columns)

    return guarded(
        None,
        batch,
        restore=lambda _: None,
        dump=lambda _: "",
        step=lambda _, part: _type_and_score(part, activity, score, limits)[columns],
        reject=reject,
    )[1]


def _type_and_score(
    batch: pd.DataFrame,
    activity: str,
    score: Callable[[pd.DataFrame], pd.DataFrame],
    limits: RecordLimits | None,
) -> pd.DataFrame:
    values = [_object(v) for v in batch["value"]]
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
        raw_value=batch["value"].where(reasons.notna()),
        topic=batch["topic"],
        partition=batch["partition"],
        offset=batch["offset"],
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


def score_frame(raw: DataFrame, settings: Settings, activity: str) -> DataFrame:
    """Kafka-shaped rows (``value``, topic, partition, offset) -> scored or quarantined rows.

    The same function for the stream (each micro-batch), replays and backtests.
    """
    h = settings.hosts
    uri = settings.mlflow.uri
    name = h.model_name(settings.name_prefix, activity)
    refresh = h.model_refresh_seconds

    limits = h.limits

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return score_events(batches, activity, uri, name, refresh, limits)

    # bytes that are not UTF-8 become U+FFFD (they then fail validation as any bad text)
    text = F.make_valid_utf8(F.col("value").cast("string"))
    return raw.select(text.alias("value"), *KAFKA).mapInPandas(run, schema=scored_schema(activity))


def quarantine_rows(scored: DataFrame) -> DataFrame:
    """Rejected events with the reason and where they came from (any activity's schema)."""
    return scored.where(F.col("reason").isNotNull()).select(
        "host",
        "activity",
        "reason",
        "raw_value",
        *KAFKA,
        F.current_timestamp().alias("quarantined_at"),
    )


def window_counts(scored: DataFrame, minutes: int) -> DataFrame:
    """Events and predicted attacks per host and ``minutes``-long event-time window."""
    window = F.window("ts", f"{minutes} minutes")
    return (
        scored.groupBy("host", window.alias("w"))
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.count(F.when(F.col("prediction"), 1)).alias("predicted_attacks"),
            F.max("score").alias("max_score"),
        )
        .select(
            "host",
            F.col("w.start").alias("window_start"),
            F.col("w.end").alias("window_end"),
            "events",
            "predicted_attacks",
            "max_score",
        )
    )


def detections(scored: DataFrame, activity: str) -> DataFrame:
    """Alert-lifecycle detections: one per event the champion predicts an attack on.

    Rule ``<activity>_attack`` per host, scored by the model's score (its probability of
    an attack), with the model version and the record's coordinates as details.
    """
    details = F.to_json(F.struct("activity", "PID", "score", "model_name", "model_version", *KAFKA))
    return scored.where(F.col("reason").isNull() & F.col("prediction")).select(
        F.col("host").alias("entity"),
        F.lit(f"{activity}_attack").alias("rule"),
        F.col("score").cast("double").alias("score"),
        F.col("ts").alias("event_time"),
        "origin",
        details.alias("details"),
    )


def write_outputs(settings: Settings, activity: str) -> Any:
    """The ``foreachBatch`` sink: scored rows, quarantine, window counts, alert lifecycle."""
    from delta.tables import DeltaTable

    from spark.alerts import Lifecycle
    from spark.tables import BatchAppender, stream_app_id

    h = settings.hosts
    query = h.query_name(activity)
    appender = BatchAppender()
    lifecycle = Lifecycle(settings, h.alerts_table, "hosts")

    def sink(batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        scored = score_frame(batch, settings, activity).persist()
        try:
            valid = scored.where(F.col("reason").isNull()).drop("reason", "raw_value")
            bad = quarantine_rows(scored)
            scored_path = settings.table_path(h.scored_table(activity))
            app = stream_app_id(spark, query)
            appender.append(valid, scored_path, f"{app}.scored", batch_id, None)
            appender.append(
                bad, settings.table_path(h.quarantine_table), f"{app}.quarantine", batch_id, None
            )
            touched = valid.select("host", F.window("ts", f"{h.window_minutes} minutes").alias("w"))
            touched = touched.select("host", F.col("w.start").alias("window_start")).distinct()
            history = (
                spark.read.format("delta")
                .load(scored_path)
                .join(F.broadcast(touched.select("host").distinct()), "host")
            )
            counts = window_counts(history, h.window_minutes).join(
                touched, ["host", "window_start"]
            )
            target = DeltaTable.forPath(spark, settings.table_path(h.counts_table(activity)))
            (
                target.alias("t")
                .merge(counts.alias("c"), "t.host = c.host AND t.window_start = c.window_start")
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
            lifecycle.record(detections(scored, activity), batch_id, query)
        finally:
            scored.unpersist()

    return sink


def ensure_tables(spark: SparkSession, settings: Settings, activity: str) -> None:
    """Create the scored, quarantine and counts tables empty if they do not exist."""
    h = settings.hosts
    empty = spark.createDataFrame([], scored_schema(activity))
    for table, frame in (
        (h.scored_table(activity), empty.drop("reason", "raw_value")),
        (h.quarantine_table, quarantine_rows(empty)),
        (h.counts_table(activity), window_counts(empty, h.window_minutes)),
    ):
        create_if_missing(frame, settings.table_path(table))


def start(
    spark: SparkSession, settings: Settings, activity: str, topic: str | None = None
) -> StreamingQuery:
    """Start the hosts speed layer for ``activity`` on ``topic`` (the activity's by default)."""
    from spark.ingest import kafka_stream

    h = settings.hosts
    ensure_tables(spark, settings, activity)
    raw = kafka_stream(
        spark, settings, topic or h.activity_topic(activity), h.max_offsets_per_trigger
    )
    query = h.query_name(activity)
    return (
        raw.writeStream.queryName(query)
        .option("checkpointLocation", settings.checkpoint_path(query))
        .trigger(processingTime=f"{int(h.trigger_seconds * 1000)} milliseconds")
        .foreachBatch(write_outputs(settings, activity))
        .start()
    )
