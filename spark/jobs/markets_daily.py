"""Daily per-symbol summary of the landed bars: bronze_markets -> gold_markets_daily.

The transform is a function of DataFrames; ``run`` is the job's edge (paths, session) and
replaces exactly one trade date's partition, so re-running or backfilling is idempotent.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from anomalake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TARGET_TABLE = "gold_markets_daily"
EXCHANGE_TZ = "Asia/Kolkata"


def trade_date(event_time: str = "event_time") -> F.Column:
    """The exchange-local date of a UTC event time."""
    return F.to_date(F.from_utc_timestamp(event_time, EXCHANGE_TZ))


def daily_summary(bars: DataFrame) -> DataFrame:
    """Per symbol and trade date: bars, first/last close, low, high, total volume, VWAP."""
    dated = bars.where(F.col("event_time").isNotNull()).withColumn("trade_date", trade_date())
    return dated.groupBy("trade_date", "symbol").agg(
        F.count(F.lit(1)).alias("bars"),
        F.min_by("close", "event_time").alias("first_close"),
        F.max_by("close", "event_time").alias("last_close"),
        F.min("low").alias("low"),
        F.max("high").alias("high"),
        F.sum("volume").alias("volume"),
        (F.sum(F.col("close") * F.col("volume")) / F.sum("volume")).alias("vwap"),
    )


def run(spark: SparkSession, settings: Settings, day: date) -> int:
    """Summarise ``day`` into the gold table (partition replace); returns rows written."""
    bars = spark.read.format("delta").load(settings.table_path(settings.markets.bronze_table))
    summary = daily_summary(bars.where(trade_date() == F.lit(day)))
    return replace_trade_date(summary, settings.table_path(TARGET_TABLE), day)


def replace_trade_date(df: DataFrame, path: str, day: date) -> int:
    """Write ``df`` as the ``trade_date = day`` partition of the Delta table at ``path``.

    Only that partition is replaced, so re-runs and backfills give identical tables.
    Returns the rows written.
    """
    (
        df.write.format("delta")
        .mode("overwrite")
        .partitionBy("trade_date")
        .option("replaceWhere", f"trade_date = DATE'{day.isoformat()}'")
        .save(path)
    )
    return df.count()
