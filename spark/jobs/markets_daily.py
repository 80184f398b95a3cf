"""Daily per-symbol summary of landed bars: bronze_markets -> gold_markets_daily.

The transform is a function of DataFrames; ``run`` is the job's edge (paths, session) and
replaces exactly one day's partition, so re-running or backfilling a date is idempotent.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from anomalake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SOURCE_TABLE = "bronze_markets"
TARGET_TABLE = "gold_markets_daily"


def with_trade_date(bars: DataFrame) -> DataFrame:
    """Add ``event_time`` (UTC timestamp) and ``trade_date`` (exchange-local date) columns."""
    event_time = F.to_timestamp("timestamp")
    return bars.withColumn("event_time", event_time).withColumn(
        "trade_date", F.to_date(F.substring("timestamp", 1, 10))
    )


def daily_summary(bars: DataFrame) -> DataFrame:
    """Per symbol and trade date: bars, first/last/min/max close, total volume, VWAP."""
    dated = with_trade_date(bars).where(F.col("event_time").isNotNull())
    ordered = F.struct("event_time", "close")
    return dated.groupBy("trade_date", "symbol").agg(
        F.count(F.lit(1)).alias("bars"),
        F.min_by("close", "event_time").alias("first_close"),
        F.max(ordered)["close"].alias("last_close"),
        F.min("low").alias("low"),
        F.max("high").alias("high"),
        F.sum("volume").alias("volume"),
        (F.sum(F.col("close") * F.col("volume")) / F.sum("volume")).alias("vwap"),
    )


def run(spark: SparkSession, settings: Settings, day: date) -> int:
    """Summarise ``day`` into the gold table (partition replace); returns rows written."""
    bars = spark.read.format("delta").load(settings.table_path(SOURCE_TABLE))
    summary = daily_summary(bars.where(F.substring("timestamp", 1, 10) == day.isoformat()))
    (
        summary.write.format("delta")
        .mode("overwrite")
        .partitionBy("trade_date")
        .option("replaceWhere", f"trade_date = DATE'{day.isoformat()}'")
        .save(settings.table_path(TARGET_TABLE))
    )
    return summary.count()
