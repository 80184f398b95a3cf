"""Backfill: score stored sensor readings again through the speed layer's own step.

Readings of a date range are read from ``bronze_infra``, turned back into the records the
speed layer reads (:func:`as_records`: the JSON :func:`anomalake.replay.infra_messages`
sends) and scored per asset by :func:`spark.streams.speed.score_batch` — the same step
the stream runs (:class:`anomalake.speed.infra.InfraStep`), from an empty state at the
start of the range (so warm-up applies again there).
Results replace the range's days in ``backfill_scores_infra``; every row is marked
``origin = 'backfill'`` and nothing from a backfill is ever sent to people.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from anomalake.settings import Settings
from spark.streams.speed import score_batch, step_for, stored_as_records
from spark.tables import Days, read_table, replace_days

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The columns of a backfill's result.
BACKFILL_COLUMNS = (
    "asset",
    "event_time",
    "partition",
    "offset",
    "score",
    "scores",
    "anomaly",
    "rules",
    "origin",
)


def as_records(readings: DataFrame, sensors: tuple[str, ...]) -> DataFrame:
    """Stored readings -> the Kafka-shaped records the infra step reads (``raw_value``...).

    The value is the reading as replayed (``v``, ``asset``, ``timestamp`` to the
    microsecond with its offset, each sensor); its origin is ``replay`` (a backfill's is
    set after). The stream stores times rounded to the microsecond, so the time read back
    is the one it scored with.
    """
    fields = [
        F.lit(1).alias("v"),
        F.col("asset"),
        F.date_format("event_time", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX").alias("timestamp"),
        *(F.col("values")[i].alias(name) for i, name in enumerate(sensors)),
        F.lit("replay").alias("origin"),
    ]
    return stored_as_records(readings, fields, key="asset")


def backfill_scores(bronze: DataFrame, settings: Settings) -> DataFrame:
    """Re-score stored readings per asset from an empty state with the stream's step.

    Readings are taken in the order the stream took them (partition, offset); the result
    has :data:`BACKFILL_COLUMNS`, ``origin = 'backfill'``. Run over the same readings as
    the stream, it reproduces the stream's scores exactly.
    """
    step = step_for(settings, settings.infra)
    scored = score_batch(as_records(bronze, settings.infra.sensors), step)
    return scored.where(F.col("reason").isNull()).select(
        *(c for c in BACKFILL_COLUMNS if c != "origin"), F.lit("backfill").alias("origin")
    )


def backfill(spark: SparkSession, settings: Settings, days: Days) -> dict[str, Any]:
    """Re-score ``days`` of stored readings; counts and how many flags differ from the stream.

    ``refused``: stored readings the step did not take again (none, for readings the
    stream stored; a reading edited in the table since could be).
    """
    i = settings.infra
    stored = read_table(spark, settings, i.bronze_table).where(days.contains("event_date"))
    scored = backfill_scores(stored, settings).withColumn("event_date", F.to_date("event_time"))
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
        "refused": stored.count() - rows,
    }


def run(spark: SparkSession, settings: Settings, days: Days, stream: str | None = None) -> str:
    """The use case's backtest (``anomalake backtest infra``): :func:`backfill`, in one line."""
    del stream
    result = backfill(spark, settings, days)
    return (
        f"{settings.infra.backfill_table} {days}: {result['rows']} readings, "
        f"{result['anomalies']} anomalies (origin backfill, not sent); "
        f"{result['differ_from_stream']} flags differ from the stream's; "
        f"{result['refused']} not taken again"
    )
