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
from collections.abc import Iterator
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

from anomalake.settings import Settings
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
) -> Iterator[pd.DataFrame]:
    """Type, validate and score raw Kafka values (the ``mapInPandas`` body)."""
    from anomalake.loaders.toniot import LAYOUTS, type_rows
    from ml.serving import champion

    columns = scored_schema(activity).fieldNames()
    for batch in batches:
        values = [_object(v) for v in batch["value"]]
        raw = pd.DataFrame.from_records(
            [v or {} for v in values],
            index=batch.index,
            columns=["host", "ts", "PID", *LAYOUTS[activity], "label", "type"],
        )
        raw = raw.map(lambda x: None if x is None else str(x))
        typed, reasons = type_rows(raw, activity)
        reasons = pd.Series(
            [
                "malformed JSON: not an object"
                if value is None
                else "; ".join(r for r in (host_missing, reason) if r) or None
                for value, host_missing, reason in zip(
                    values,
                    raw["host"].isna().map({True: "missing field host", False: None}),
                    reasons,
                    strict=True,
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
            reason=reasons,
            raw_value=batch["value"].where(reasons.notna()),
            topic=batch["topic"],
            partition=batch["partition"],
            offset=batch["offset"],
        )
        valid = reasons.isna()
        scored = champion(tracking_uri, model_name, refresh_seconds).score(typed[valid])
        for col in ("score", "prediction", "model_name", "model_version"):
            out[col] = None
            out.loc[valid, col] = scored[col]
        yield out[columns]


def _object(value: Any) -> dict[str, Any] | None:
    try:
        parsed = json.loads(value) if value is not None else None
    except (ValueError, UnicodeDecodeError):
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

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return score_events(batches, activity, uri, name, refresh)

    return raw.select(F.col("value").cast("string").alias("value"), *KAFKA).mapInPandas(
        run, schema=scored_schema(activity)
    )


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


def write_outputs(settings: Settings, activity: str) -> Any:
    """The ``foreachBatch`` sink: scored rows, quarantine, per-host window counts."""
    from delta.tables import DeltaTable

    from spark.tables import BatchAppender, stream_app_id

    h = settings.hosts
    query = h.query_name(activity)
    appender = BatchAppender()

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


def start(spark: SparkSession, settings: Settings, activity: str) -> StreamingQuery:
    """Start the hosts speed layer for ``activity`` on its topic."""
    from spark.ingest import kafka_stream

    h = settings.hosts
    ensure_tables(spark, settings, activity)
    raw = kafka_stream(spark, settings, h.topic(activity), h.max_offsets_per_trigger)
    query = h.query_name(activity)
    return (
        raw.writeStream.queryName(query)
        .option("checkpointLocation", settings.checkpoint_path(query))
        .trigger(processingTime=f"{int(h.trigger_seconds * 1000)} milliseconds")
        .foreachBatch(write_outputs(settings, activity))
        .start()
    )
