"""Backfill: score stored sensor readings again through the speed layer's own step.

Readings of a date range are read from ``bronze_infra`` and scored per asset by
:func:`spark.streams.infra.backfill_scores` — the same :func:`score_readings` the stream
runs, from an empty state at the start of the range (so warm-up applies again there).
Results replace the range's days in ``backfill_scores_infra``; every row is marked
``origin = 'backfill'`` and nothing from a backfill is ever sent to people.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from anomalake.settings import Settings
from anomalake.speed.infra import load_config
from spark.streams.infra import backfill_scores
from spark.tables import Days, read_table, replace_days

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def backfill(spark: SparkSession, settings: Settings, days: Days) -> dict[str, Any]:
    """Re-score ``days`` of stored readings; counts and how many flags differ from the stream."""
    i = settings.infra
    stored = read_table(spark, settings, i.bronze_table).where(days.contains("event_date"))
    scored = backfill_scores(stored, settings, load_config(settings)).withColumn(
        "event_date", F.to_date("event_time")
    )
    rows = replace_days(scored, settings.table_path(i.backfill_table), days, "event_date")
    result = read_table(spark, settings, i.backfill_table).where(days.contains("event_date"))
    compared = result.alias("b").join(
        stored.select("asset", "partition", "offset", F.col("anomaly").alias("stream_anomaly")),
        ["asset", "partition", "offset"],
    )
    return {
        "rows": rows,
        "anomalies": result.where("anomaly").count(),
        "differ_from_stream": compared.where(F.col("anomaly") != F.col("stream_anomaly")).count(),
    }


def run(spark: SparkSession, settings: Settings, days: Days, stream: str | None = None) -> str:
    """The use case's backtest (``anomalake backtest infra``): :func:`backfill`, in one line."""
    del stream
    result = backfill(spark, settings, days)
    return (
        f"{settings.infra.backfill_table} {days}: {result['rows']} readings, "
        f"{result['anomalies']} anomalies (origin backfill, not sent); "
        f"{result['differ_from_stream']} flags differ from the stream's"
    )
