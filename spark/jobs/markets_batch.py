"""Batch views of the markets data: silver bars, gaps, recomputed rules, reconciliation.

Transforms of DataFrames, reusing the speed layer's own functions: validation is
:func:`spark.streams.speed.decode_and_validate` of the markets spec and the rules are the
stream's own step (:class:`anomalake.speed.markets.MarketsStep`, by
:func:`spark.streams.speed.score_batch`), so a batch recomputation cannot drift from the
stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F

from anomalake.detection.markets import MarketRuleParams
from anomalake.loaders.markets import EXCHANGE_TIMEZONE, market_files, read_raw_rows
from anomalake.replay import to_message
from anomalake.settings import Settings
from anomalake.speed.markets import BAR_FIELDS, MarketsStep
from spark.streams.speed import accepted_rows, decode_and_validate, quarantine_rows, score_batch
from spark.tables import Days, read_table, read_table_or_empty, replace_days

KAFKA_RECORD = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def records_as_kafka_rows(
    spark: SparkSession, messages: list[tuple[str, bytes]], topic: str = "replay"
) -> DataFrame:
    """(key, value) messages as a static DataFrame shaped like Spark's Kafka source."""
    rows = [(k.encode(), v, topic, 0, i, None) for i, (k, v) in enumerate(messages)]
    return spark.createDataFrame(rows, KAFKA_RECORD)


def trade_date(event_time: str = "event_time") -> F.Column:
    """The exchange-local date of a UTC event time."""
    return F.to_date(F.from_utc_timestamp(event_time, EXCHANGE_TIMEZONE))


def silver_bars(validated: DataFrame) -> DataFrame:
    """Valid bars, one per (symbol, minute): the first to arrive (lowest partition, offset).

    Bars decoded but not yet through the step get their minute here.
    """
    if "minute" not in validated.columns:
        minute = F.floor(F.unix_timestamp("event_time") / 60).cast("long")
        validated = validated.withColumn("minute", minute)
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
    """A1/A2 over silver with the stream's own scoring step (:func:`score_batch`)."""
    columns = silver.withColumns(
        {
            "reason": F.lit(None).cast("string"),
            "raw_value": F.lit(None).cast("string"),
        }
    ).select(*BAR_FIELDS)
    return score_batch(columns, MarketsStep(params, flush_after_ms=0, ttl_ms=0))


def fired(scored: DataFrame) -> DataFrame:
    """(symbol, minute, rules) of the bars on which a rule fired."""
    rules = F.filter(
        F.array(F.when(F.col("a1"), F.lit("A1")), F.when(F.col("a2"), F.lit("A2"))),
        lambda r: r.isNotNull(),
    )
    return scored.where(F.col("a1") | F.col("a2")).select(
        "symbol", "minute", "event_time", F.array_join(rules, ",").alias("rules")
    )


def _compared(stream_fired: DataFrame, batch_fired: DataFrame) -> DataFrame:
    """The stream's fired bars and the batch's (both :func:`fired`) side by side."""
    s = stream_fired.select("symbol", "minute", F.col("rules").alias("stream_rules"), "event_time")
    b = batch_fired.select(
        "symbol",
        "minute",
        F.col("rules").alias("batch_rules"),
        F.col("event_time").alias("batch_time"),
    )
    return s.join(b, ["symbol", "minute"], "full_outer").withColumn(
        "day", F.to_date(F.coalesce("event_time", "batch_time"))
    )


def reconcile(stream_fired: DataFrame, batch_fired: DataFrame) -> DataFrame:
    """Per day: anomalies in both, only in batch (the stream missed), only in the stream."""
    return (
        _compared(stream_fired, batch_fired)
        .groupBy("day")
        .agg(
            F.count(F.when(F.col("stream_rules") == F.col("batch_rules"), 1)).alias("matched"),
            F.count(F.when(F.col("stream_rules").isNull(), 1)).alias("missed_by_stream"),
            F.count(F.when(F.col("batch_rules").isNull(), 1)).alias("added_by_stream"),
            F.count(F.when(F.col("stream_rules") != F.col("batch_rules"), 1)).alias("rules_differ"),
        )
        .orderBy("day")
    )


def explain_differences(
    stream_fired: DataFrame,
    batch_fired: DataFrame,
    quarantine: DataFrame,
    silver: DataFrame,
    window_minutes: int,
) -> DataFrame:
    """One row per anomaly the stream and the batch disagree on, with the likely reason.

    ``kind`` is ``missed_by_stream``, ``added_by_stream`` or ``rules_differ``. The reason
    is looked up in what the stream quarantined (``quarantine``: bars it refused as late,
    duplicate or invalid) and in silver: the bar itself was quarantined; a bar of the same
    symbol in the ``window_minutes`` before was quarantined (the latest such bar is named;
    the stream's history differs,
    so its previous close or mean volume differs); the bar is not in silver; otherwise
    ``unexplained``.
    """
    diffs = (
        _compared(stream_fired, batch_fired)
        .where(
            F.col("stream_rules").isNull()
            | F.col("batch_rules").isNull()
            | (F.col("stream_rules") != F.col("batch_rules"))
        )
        .withColumn(
            "kind",
            F.when(F.col("stream_rules").isNull(), "missed_by_stream")
            .when(F.col("batch_rules").isNull(), "added_by_stream")
            .otherwise("rules_differ"),
        )
    )
    q = quarantine.where(F.col("symbol").isNotNull() & F.col("event_time").isNotNull()).select(
        F.col("symbol").alias("q_symbol"),
        (F.unix_timestamp("event_time") / 60).cast("long").alias("q_minute"),
        F.col("reason").alias("q_reason"),
    )
    same_bar = (
        diffs.join(
            q,
            (F.col("symbol") == F.col("q_symbol")) & (F.col("minute") == F.col("q_minute")),
            "left",
        )
        .groupBy(*diffs.columns)
        .agg(F.min("q_reason").alias("bar_reason"))
    )
    in_window = (
        same_bar.join(
            q,
            (F.col("symbol") == F.col("q_symbol"))
            & (F.col("q_minute") < F.col("minute"))
            & (F.col("q_minute") >= F.col("minute") - window_minutes),
            "left",
        )
        .groupBy(*same_bar.columns)
        .agg(F.max_by("q_reason", "q_minute").alias("window_reason"))
    )
    in_silver = silver.select("symbol", "minute", F.lit(True).alias("in_silver"))
    return (
        in_window.join(in_silver, ["symbol", "minute"], "left")
        .withColumn(
            "reason",
            F.when(
                F.col("bar_reason").isNotNull(),
                F.concat(F.lit("the stream quarantined this bar: "), "bar_reason"),
            )
            .when(
                F.col("window_reason").isNotNull(),
                F.concat(
                    F.lit("the stream quarantined an earlier bar in the window: "),
                    "window_reason",
                ),
            )
            .when(F.col("in_silver").isNull(), F.lit("the bar is not in silver"))
            .otherwise(F.lit("unexplained")),
        )
        .select(
            F.col("day").alias("trade_date"),
            "symbol",
            F.coalesce("event_time", "batch_time").alias("event_time"),
            "kind",
            "stream_rules",
            "batch_rules",
            "reason",
        )
    )


def silver_from_bronze(bronze: DataFrame) -> DataFrame:
    """Silver from the stream's bronze table (already validated; deduplicated again)."""
    return silver_bars(
        bronze.withColumns(
            {
                "reason": F.lit(None).cast("string"),
                "raw_value": F.lit(None).cast("string"),
            }
        ).select(*BAR_FIELDS)
    )


def build_silver(spark: SparkSession, settings: Settings, days: Days) -> dict[str, int]:
    """Silver bars and gaps of ``days`` from bronze (partition replace)."""
    m = settings.markets
    bronze = read_table(spark, settings, m.bronze_table).where(days.contains(trade_date()))
    silver_rows = replace_days(
        silver_from_bronze(bronze), settings.table_path(m.silver_table), days
    )
    silver = read_table(spark, settings, m.silver_table).where(days.contains("trade_date"))
    gap_rows = replace_days(gaps(silver), settings.table_path(m.gaps_table), days)
    return {"silver": silver_rows, "gaps": gap_rows}


def recompute_and_reconcile(spark: SparkSession, settings: Settings, days: Days) -> dict[str, int]:
    """A1/A2 of ``days`` recomputed over silver, reconciled with the bars the stream fired on."""
    from anomalake.detection.markets import rule_params

    m = settings.markets
    silver = read_table(spark, settings, m.silver_table).where(days.contains("trade_date"))
    anomalies = fired(recompute_rules(silver, rule_params(m))).withColumn(
        "trade_date", trade_date()
    )
    rows = replace_days(anomalies, settings.table_path(m.batch_anomalies_table), days)
    # the stream's fired bars: bronze keeps each bar's A1/A2 flags
    stream_fired = fired(
        read_table_or_empty(
            spark,
            settings,
            m.bronze_table,
            "symbol string, minute long, event_time timestamp, a1 boolean, a2 boolean",
        ).where(days.contains(trade_date()))
    )
    recomputed = read_table(spark, settings, m.batch_anomalies_table).where(
        days.contains("trade_date")
    )
    report = reconcile(stream_fired, recomputed).withColumnRenamed("day", "trade_date")
    replace_days(report, settings.table_path(m.reconciliation_table), days)
    quarantine = read_table_or_empty(
        spark,
        settings,
        m.quarantine_table,
        "symbol string, event_time timestamp, reason string",
    ).where(days.widened(1).contains(trade_date()))
    details = explain_differences(stream_fired, recomputed, quarantine, silver, m.a2_window_minutes)
    differences = replace_days(details, settings.table_path(m.reconciliation_details_table), days)
    return {"batch_anomalies": rows, "differences": differences}


def file_records(spark: SparkSession, path: Path) -> DataFrame:
    """Every row of the export files at ``path`` as Kafka-shaped records.

    Files are read by the project's loader in Spark's Python workers, one task per file,
    and encoded exactly as the producer encodes them; the topic is ``file:<name>``, the
    offset the row's position in its file (so "first arrival wins" means first in file).
    """
    files = [str(f) for f in market_files(path)]

    def rows(name: str) -> Iterator[tuple[object, ...]]:
        file = Path(name)
        for i, raw in enumerate(read_raw_rows(file)):
            key, value = to_message(raw)
            yield key.encode(), value, f"file:{file.name}", 0, i, None

    records = spark.sparkContext.parallelize(files, max(1, len(files))).flatMap(rows)
    return spark.createDataFrame(records, KAFKA_RECORD)


def load_files_to_bronze(spark: SparkSession, settings: Settings, path: Path) -> dict[str, int]:
    """Land export files in bronze and quarantine through the speed layer's own functions.

    Validation is the stream's, scoring the stream's step over each file as one batch;
    rows previously loaded from the same files are replaced, so loading again changes
    nothing. Anomalies found here are not alerted: the batch layer recomputes them.
    """
    m = settings.markets
    topics = ", ".join("'" + f"file:{f.name}".replace("'", "''") + "'" for f in market_files(path))
    same_files = f"topic IN ({topics})"
    step = MarketsStep.from_settings(settings)
    scored = score_batch(decode_and_validate(file_records(spark, path), m), step).persist()
    try:
        for rows, table, partition in (
            (accepted_rows(scored, step), m.bronze_table, "event_date"),
            (quarantine_rows(scored, step), m.quarantine_table, None),
        ):
            writer = rows.write.format("delta").mode("overwrite").option("replaceWhere", same_files)
            if partition:
                writer = writer.partitionBy(partition)
            writer.save(settings.table_path(table))
        counts = {
            name: int(read_table(spark, settings, table).where(same_files).count())
            for name, table in (("bronze", m.bronze_table), ("quarantine", m.quarantine_table))
        }
    finally:
        scored.unpersist()
    return counts
