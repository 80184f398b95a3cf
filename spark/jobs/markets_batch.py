"""Batch views of the markets data: silver bars, gaps, recomputed rules, reconciliation.

Transforms of DataFrames, reusing the speed layer's own functions: validation is
``decode_and_validate`` and the rules are ``spark.rules`` (through
``make_state_function``), so a batch recomputation cannot drift from the stream.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import Window
from pyspark.sql import functions as F

from anomalake.settings import Settings
from spark.jobs.markets_daily import replace_trade_date, trade_date
from spark.rules import MarketRuleParams, SymbolState, accept, evaluate_ready
from spark.streams.markets import SCORED, VALIDATED, bar_record, scored_frame

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def records_as_kafka_rows(
    spark: SparkSession, messages: list[tuple[str, bytes]], topic: str = "replay"
) -> DataFrame:
    """(key, value) messages as a static DataFrame shaped like Spark's Kafka source."""
    rows = [(k.encode(), v, topic, 0, i, None) for i, (k, v) in enumerate(messages)]
    return spark.createDataFrame(
        rows,
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
    )


def silver_bars(validated: DataFrame) -> DataFrame:
    """Valid bars, one per (symbol, minute): the first to arrive (lowest partition, offset)."""
    first = Window.partitionBy("symbol", "minute").orderBy("partition", "offset")
    return (
        validated.where(F.col("reason").isNull())
        .withColumn("_n", F.row_number().over(first))
        .where("_n = 1")
        .drop("_n", "reason", "raw_value")
        .withColumn("trade_date", trade_date())
    )


def gaps(silver: DataFrame) -> DataFrame:
    """Missing minutes inside each symbol's trading day: one row per gap."""
    order = Window.partitionBy("symbol", "trade_date").orderBy("minute")
    return (
        silver.select("symbol", "trade_date", "minute", "event_time")
        .withColumn("prev_minute", F.lag("minute").over(order))
        .withColumn("prev_time", F.lag("event_time").over(order))
        .where(F.col("minute") - F.col("prev_minute") > 1)
        .select(
            "symbol",
            "trade_date",
            F.col("prev_time").alias("last_bar_before"),
            F.col("event_time").alias("first_bar_after"),
            (F.col("minute") - F.col("prev_minute") - 1).alias("missing_minutes"),
        )
    )


def recompute_rules(silver: DataFrame, params: MarketRuleParams) -> DataFrame:
    """A1/A2 over silver with the stream's rule code: every bar scored, in minute order."""

    def per_symbol(frame: pd.DataFrame) -> pd.DataFrame:
        state = SymbolState()
        for record in frame.sort_values("minute").to_dict("records"):
            accept(state, bar_record({k: record[k] for k in VALIDATED.fieldNames()}))
        return scored_frame(evaluate_ready(state, params, flush=True))

    columns = silver.withColumns(
        {
            "reason": F.lit(None).cast("string"),
            "raw_value": F.lit(None).cast("string"),
        }
    ).select(*VALIDATED.fieldNames())
    return columns.groupBy("symbol").applyInPandas(per_symbol, schema=SCORED)


def fired(scored: DataFrame) -> DataFrame:
    """(symbol, minute, rules) of the bars on which a rule fired."""
    rules = F.filter(
        F.array(F.when(F.col("a1"), F.lit("A1")), F.when(F.col("a2"), F.lit("A2"))),
        lambda r: r.isNotNull(),
    )
    return scored.where(F.col("a1") | F.col("a2")).select(
        "symbol", "minute", "event_time", F.array_join(rules, ",").alias("rules")
    )


def reconcile(stream_alerts: DataFrame, batch_fired: DataFrame) -> DataFrame:
    """Per day: anomalies in both, only in batch (the stream missed), only in the stream."""
    s = stream_alerts.select(
        "symbol",
        (F.unix_timestamp("event_time") / 60).cast("long").alias("minute"),
        F.array_join("rules", ",").alias("stream_rules"),
        "event_time",
    )
    b = batch_fired.select(
        "symbol",
        "minute",
        F.col("rules").alias("batch_rules"),
        F.col("event_time").alias("batch_time"),
    )
    joined = s.join(b, ["symbol", "minute"], "full_outer").withColumn(
        "day", F.to_date(F.coalesce("event_time", "batch_time"))
    )
    return (
        joined.groupBy("day")
        .agg(
            F.count(F.when(F.col("stream_rules") == F.col("batch_rules"), 1)).alias("matched"),
            F.count(F.when(F.col("stream_rules").isNull(), 1)).alias("missed_by_stream"),
            F.count(F.when(F.col("batch_rules").isNull(), 1)).alias("added_by_stream"),
            F.count(F.when(F.col("stream_rules") != F.col("batch_rules"), 1)).alias("rules_differ"),
        )
        .orderBy("day")
    )


def silver_from_bronze(bronze: DataFrame) -> DataFrame:
    """Silver from the stream's bronze table (already validated; deduplicated again)."""
    return silver_bars(
        bronze.withColumns(
            {
                "reason": F.lit(None).cast("string"),
                "raw_value": F.lit(None).cast("string"),
            }
        ).select(*VALIDATED.fieldNames())
    )


def run_day(spark: SparkSession, settings: Settings, day: date) -> dict[str, int]:
    """The daily batch of one trade date: silver, gaps, recomputed anomalies, reconciliation.

    Each output is replaced for ``day`` only (partition replace), so re-runs and
    backfills give identical tables.
    """
    from spark.streams.markets import rule_params

    m = settings.markets
    bronze = spark.read.format("delta").load(settings.table_path(m.bronze_table))
    silver = silver_from_bronze(bronze.where(trade_date() == F.lit(day))).cache()
    anomalies = fired(recompute_rules(silver, rule_params(m))).withColumn("trade_date", F.lit(day))
    alerts = spark.read.format("delta").load(settings.table_path(m.alerts_table))
    alerts = alerts.where(trade_date() == F.lit(day))
    report = reconcile(alerts, anomalies).drop("day").withColumn("trade_date", F.lit(day))
    counts = {
        "silver": replace_trade_date(silver, settings.table_path("silver_markets"), day),
        "gaps": replace_trade_date(gaps(silver), settings.table_path("gaps_markets"), day),
        "batch_anomalies": replace_trade_date(
            anomalies, settings.table_path("batch_anomalies_markets"), day
        ),
        "reconciliation": replace_trade_date(
            report, settings.table_path("reconciliation_markets"), day
        ),
    }
    silver.unpersist()
    return counts
