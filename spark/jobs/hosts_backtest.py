"""Backtest: score stored host events again with today's champion, through the stream's code.

Events already in the scored table are turned back into the records the speed layer
reads (JSON values, as :func:`anomalake.replay.host_messages` sends them) and go through
the very same step (:class:`anomalake.speed.hosts.HostsStep`, by
:func:`spark.streams.speed.score_batch`), so a backtest cannot drift from the stream.
Results replace the date range in ``backtest_hosts_<activity>``, with the model version
that scored them and the prediction the stream made at the time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from anomalake.settings import Settings
from spark.streams.speed import score_batch, step_for, stored_as_records
from spark.tables import Days, read_table, replace_days

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def as_records(events: DataFrame, activity: str) -> DataFrame:
    """Stored events of ``activity`` -> Kafka-shaped records (``raw_value`` JSON, key, ...)."""
    from anomalake.loaders.toniot import LAYOUTS

    fields = [
        F.lit(1).alias("v"),
        F.col("host"),
        F.lit(activity).alias("activity"),
        (F.unix_micros("ts") / 1e6).cast("string").alias("ts"),
        F.col("PID").cast("string").alias("PID"),
        *(F.col(c).cast("string").alias(c) for c in LAYOUTS[activity]),
        F.col("label").cast("string").alias("label"),
    ]
    return stored_as_records(events, fields, key="host")


def backtest(spark: SparkSession, settings: Settings, activity: str, days: Days) -> dict[str, Any]:
    """Re-score ``days`` of stored ``activity`` events with the current champion."""
    h = settings.hosts
    stored = read_table(spark, settings, h.scored_table(activity)).where(
        days.contains(F.to_date("ts"))
    )
    keys = ["topic", "partition", "offset"]
    rescored = (
        score_batch(as_records(stored, activity), step_for(settings, h, activity))
        .where(F.col("reason").isNull())
        .drop("reason", "raw_value", "key", "kafka_timestamp")
        .join(
            stored.select(
                *keys,
                F.col("prediction").alias("stream_prediction"),
                F.col("model_version").alias("stream_model_version"),
            ),
            keys,
        )
        .withColumn("event_date", F.to_date("ts"))
    )
    path = settings.table_path(h.backtest_table(activity))
    rows = replace_days(rescored, path, days, column="event_date")
    summary = (
        read_table(spark, settings, h.backtest_table(activity))
        .where(days.contains("event_date"))
        .agg(
            F.count(F.when(F.col("prediction"), 1)).alias("predicted_attacks"),
            F.count(F.when(F.col("prediction") != F.col("stream_prediction"), 1)).alias("changed"),
            F.collect_set("model_version").alias("versions"),
        )
        .first()
    )
    assert summary is not None
    return {
        "rows": rows,
        "predicted_attacks": int(summary["predicted_attacks"]),
        "changed_vs_stream": int(summary["changed"]),
        "model_versions": sorted(summary["versions"]),
    }


def run(spark: SparkSession, settings: Settings, days: Days, stream: str | None = None) -> str:
    """The use case's backtest (``anomalake backtest hosts --stream A``), in one line."""
    if stream is None:
        raise ValueError("hosts backtests one activity at a time: name it with --stream")
    result = backtest(spark, settings, stream, days)
    return (
        f"{settings.hosts.backtest_table(stream)} {days}: {result['rows']} events, "
        f"{result['predicted_attacks']} predicted attacks by version(s) "
        f"{', '.join(result['model_versions']) or '-'}; "
        f"{result['changed_vs_stream']} predictions differ from the stream's"
    )
