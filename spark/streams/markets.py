"""The markets speed layer: Kafka bars -> validation -> per-symbol rule state -> Delta + alerts.

One streaming query, one checkpoint:

1. :func:`decode_and_validate` (stateless) types each Kafka record with an explicit schema
   and gives every record that cannot be a bar a ``reason``;
2. :func:`score_bars` groups by symbol and runs the rules of :mod:`spark.rules` in Spark's
   state store (``applyInPandasWithState``): valid bars are queued behind the symbol's
   event-time watermark, evaluated in minute order and emitted scored; invalid, duplicate
   and late records pass through with their reason;
3. :func:`write_outputs` (``foreachBatch``) appends bars to the bronze table, the rest to
   quarantine, fired rules to the alerts table — each Delta write idempotent on the batch
   id (``txnAppId``/``txnVersion``), so a batch replayed after a crash is written once — and
   publishes the alerts to the alerts topic (at least once, keyed by a deterministic
   ``alert_id``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupStateTimeout
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

from anomalake.producer import SCHEMA_VERSION
from anomalake.settings import MarketsSettings, Settings
from spark.ingest import bronze_rows
from spark.rules import MarketRuleParams, SymbolState, accept, evaluate_ready
from spark.schemas import KAFKA_RECORD_FIELDS
from spark.tables import append_once, create_if_missing

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery
    from pyspark.sql.streaming.state import GroupState

log = logging.getLogger(__name__)
PRICE_FIELDS = ("open", "high", "low", "close")
RAW_BAR = StructType(
    [
        StructField(name, StringType())
        for name in ("v", "symbol", "timestamp", "open", "high", "low", "close", "volume")
    ]
)
VALIDATED = StructType(
    [
        StructField("symbol", StringType()),
        StructField("event_time", TimestampType()),
        StructField("minute", LongType()),
        *(StructField(p, DoubleType()) for p in PRICE_FIELDS),
        StructField("volume", LongType()),
        StructField("schema_version", IntegerType()),
        StructField("reason", StringType()),
        StructField("raw_value", StringType()),
        *KAFKA_RECORD_FIELDS,
    ]
)
SCORED = StructType(
    [
        *VALIDATED.fields,
        StructField("prev_close", DoubleType()),
        StructField("close_change", DoubleType()),
        StructField("a1", BooleanType()),
        StructField("mean_volume", DoubleType()),
        StructField("volume_ratio", DoubleType()),
        StructField("a2", BooleanType()),
        StructField("history_minutes", IntegerType()),
    ]
)
STATE = StructType([StructField("state", StringType())])


def rule_params(markets: MarketsSettings) -> MarketRuleParams:
    """The rule parameters named in settings."""
    return MarketRuleParams(
        a1_threshold=markets.a1_threshold,
        a2_factor=markets.a2_factor,
        a2_window_minutes=markets.a2_window_minutes,
        a2_min_history=markets.a2_min_history,
        lateness_minutes=markets.lateness_minutes,
    )


def decode_and_validate(raw: DataFrame, max_payload_bytes: int) -> DataFrame:
    """Kafka records -> typed bars with ``reason`` null, or with every problem found.

    Problems: oversized payload, malformed JSON, unsupported schema version, missing
    fields, values of the wrong type, unparsable timestamps, NaN or non-positive prices,
    negative volumes. Nothing is dropped.
    """
    text = F.col("value").cast("string")
    j = F.from_json(text, RAW_BAR)
    df = raw.select(
        text.alias("raw_value"),
        F.length("value").alias("_bytes"),
        j.alias("j"),
        F.coalesce(
            ~F.schema_of_variant(F.try_parse_json(text)).startswith("OBJECT"), F.lit(True)
        ).alias("_not_object"),
        F.col("key").cast("string").alias("key"),
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
    )
    typed = {p: F.col(f"j.{p}").try_cast("double") for p in PRICE_FIELDS}
    volume_num = F.col("j.volume").try_cast("decimal(38,6)")
    event_time = F.col("j.timestamp").try_cast("timestamp")
    version = F.col("j.v").try_cast("int")
    problems = [
        F.when(
            F.col("_bytes") > max_payload_bytes,
            F.format_string("oversized payload: %d bytes > %d", "_bytes", F.lit(max_payload_bytes)),
        ),
        F.when(F.col("_not_object"), F.lit("malformed JSON: not an object")),
        F.when(
            ~F.col("_not_object") & (version.isNull() | (version != SCHEMA_VERSION)),
            F.format_string("unsupported schema version: %s", F.coalesce("j.v", F.lit("none"))),
        ),
    ]
    for name in ("symbol", "timestamp", *PRICE_FIELDS, "volume"):
        problems.append(
            F.when(
                ~F.col("_not_object") & F.col(f"j.{name}").isNull(), F.lit(f"missing field {name}")
            )
        )
    problems.append(
        F.when(
            F.col("j.timestamp").isNotNull() & event_time.isNull(),
            F.format_string("unparsable timestamp: '%s'", "j.timestamp"),
        )
    )
    for name, value in typed.items():
        raw_field = F.col(f"j.{name}")
        problems += [
            F.when(
                raw_field.isNotNull() & value.isNull(),
                F.format_string(f"bad type for {name}: '%s'", raw_field),
            ),
            F.when(F.isnan(value), F.lit(f"NaN price in {name}")),
            F.when(value <= 0, F.format_string(f"non-positive price in {name}: %s", raw_field)),
        ]
    problems += [
        F.when(
            F.col("j.volume").isNotNull()
            & (volume_num.isNull() | (volume_num != F.floor(volume_num))),
            F.format_string("bad type for volume: '%s'", "j.volume"),
        ),
        F.when(volume_num < 0, F.format_string("negative volume: %s", "j.volume")),
    ]
    reason = F.concat_ws("; ", *problems)
    out = df.select(
        F.col("j.symbol").alias("symbol"),
        event_time.alias("event_time"),
        F.floor(F.unix_timestamp(event_time) / 60).cast("long").alias("minute"),
        *(typed[p].alias(p) for p in PRICE_FIELDS),
        volume_num.try_cast("long").alias("volume"),
        version.alias("schema_version"),
        F.when(reason != "", reason).alias("reason"),
        F.when(reason != "", F.col("raw_value")).alias("raw_value"),
        "key",
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
    )
    return out


TIME_COLUMNS = ("event_time", "kafka_timestamp")
NULLABLE_DTYPES = {
    "minute": "Int64",
    "volume": "Int64",
    "schema_version": "Int32",
    "partition": "Int32",
    "offset": "Int64",
    "history_minutes": "Int32",
    "a1": "boolean",
    "a2": "boolean",
}


def bar_record(record: dict[str, Any]) -> dict[str, Any]:
    """A pandas record as JSON-safe values (timestamps as epoch microseconds)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if _is_missing(value):
            out[key] = None
        elif key in TIME_COLUMNS:
            out[key] = pd.Timestamp(value).value // 1000
        elif key in NULLABLE_DTYPES and key not in ("a1", "a2"):
            out[key] = int(value)
        else:
            out[key] = value
    return out


def scored_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records from :func:`bar_record` / the rules as a pandas frame of the SCORED schema."""
    frame = pd.DataFrame.from_records(records, columns=SCORED.fieldNames())
    for col in TIME_COLUMNS:
        frame[col] = pd.to_datetime(frame[col], unit="us")
    return frame.astype(NULLABLE_DTYPES)


BAR_FIELDS = VALIDATED.fieldNames()


def score_arrivals(
    state: SymbolState,
    arrivals: pd.DataFrame,
    params: MarketRuleParams,
    *,
    keyed: bool = True,
    flush: bool = False,
) -> list[dict[str, Any]]:
    """One symbol's arrivals through the rules: the step the stream and the batch share.

    Records are taken in arrival order (partition, offset); valid bars are queued in
    ``state`` (a duplicate or late bar comes back with its quarantine reason), invalid ones
    pass through with theirs, then every bar that is final is evaluated (all of them when
    ``flush``). ``keyed`` is false for records without a symbol (they cannot be queued).
    """
    out: list[dict[str, Any]] = []
    ordered = arrivals.sort_values(["partition", "offset"], kind="stable")
    for record in ordered.to_dict("records"):
        bar = bar_record({k: record[k] for k in BAR_FIELDS})
        if bar["reason"] is None and keyed:
            reason = accept(state, bar)
            if reason is None:
                continue
            bar["reason"] = reason
            bar["raw_value"] = None
        out.append(bar)
    out.extend(evaluate_ready(state, params, flush=flush))
    return out


def make_state_function(params: MarketRuleParams, flush_after_ms: int) -> Any:
    """The per-symbol function that ``applyInPandasWithState`` calls."""

    def step(
        key: tuple[Any, ...], batches: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        symbol_state = SymbolState.from_json(state.get[0]) if state.exists else SymbolState()
        if state.hasTimedOut:
            scored = evaluate_ready(symbol_state, params, flush=True)
            state.update((symbol_state.to_json(),))
            if scored:
                yield scored_frame(scored)
            return
        incoming = pd.concat(list(batches), ignore_index=True)
        out = score_arrivals(symbol_state, incoming, params, keyed=key[0] is not None)
        if key[0] is not None:
            state.update((symbol_state.to_json(),))
            state.setTimeoutDuration(flush_after_ms)
        if out:
            yield scored_frame(out)

    return step


def score_batch(validated: DataFrame, params: MarketRuleParams) -> DataFrame:
    """The stream's scoring over a static DataFrame: every symbol's records as one batch.

    Same function as the speed layer (:func:`score_arrivals`), from an empty state, all
    bars flushed at the end; every input record comes out once, scored or quarantined.
    """

    def per_symbol(key: tuple[Any, ...], arrivals: pd.DataFrame) -> pd.DataFrame:
        out = score_arrivals(SymbolState(), arrivals, params, keyed=key[0] is not None, flush=True)
        return scored_frame(out)

    return validated.groupBy("symbol").applyInPandas(per_symbol, schema=SCORED)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NaT


def score_bars(validated: DataFrame, params: MarketRuleParams, flush_after_ms: int) -> DataFrame:
    """Run the rules per symbol in Spark's state store; every input record comes out once."""
    return validated.groupBy("symbol").applyInPandasWithState(
        make_state_function(params, flush_after_ms),
        outputStructType=SCORED,
        stateStructType=STATE,
        outputMode="append",
        timeoutConf=GroupStateTimeout.ProcessingTimeTimeout,
    )


def quarantine_rows(scored: DataFrame) -> DataFrame:
    """Records that are not accepted bars, with the raw value and the reason."""
    return scored.where(F.col("reason").isNotNull()).select(
        "raw_value",
        "reason",
        "symbol",
        "event_time",
        "key",
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        F.current_timestamp().alias("quarantined_at"),
    )


def alert_rows(scored: DataFrame, batch_id: int) -> DataFrame:
    """One alert per bar on which A1 or A2 fired, with its reference values and batch."""
    rules = F.filter(
        F.array(F.when(F.col("a1"), F.lit("A1")), F.when(F.col("a2"), F.lit("A2"))),
        lambda r: r.isNotNull(),
    )
    return scored.where(F.col("reason").isNull() & (F.col("a1") | F.col("a2"))).select(
        F.sha2(F.concat_ws("|", "symbol", F.col("minute").cast("string")), 256)
        .substr(1, 32)
        .alias("alert_id"),
        "symbol",
        "event_time",
        rules.alias("rules"),
        "open",
        "high",
        "low",
        "close",
        "volume",
        "prev_close",
        "close_change",
        "mean_volume",
        "volume_ratio",
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        F.current_timestamp().alias("detected_at"),
        F.lit(batch_id).cast("long").alias("batch_id"),
    )


def write_outputs(settings: Settings) -> Any:
    """The ``foreachBatch`` sink: alerts (table, then topic), bronze and quarantine tables.

    Alerts go first, so their latency does not include the bronze write; an empty part
    writes nothing (a replayed batch then also writes nothing, so idempotence holds).
    """
    m = settings.markets

    def sink(batch: DataFrame, batch_id: int) -> None:
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round(now - clock, 3)
            clock = now

        batch.persist()
        try:
            kinds = (
                batch.select(
                    F.when(F.col("reason").isNotNull(), "quarantine")
                    .when(F.col("a1") | F.col("a2"), "alert")
                    .otherwise("bar")
                    .alias("kind")
                )
                .groupBy("kind")
                .count()
                .collect()
            )
            counts = {row["kind"]: row["count"] for row in kinds}
            lap("score")
            query = m.query_name
            if counts.get("alert"):
                alerts = alert_rows(batch, batch_id).persist()
                append_once(
                    alerts, settings.table_path(m.alerts_table), f"{query}.alerts", batch_id, None
                )
                lap("alerts_table")
                (
                    alerts.select(
                        F.col("alert_id").alias("key"),
                        F.to_json(F.struct(F.lit(SCHEMA_VERSION).alias("v"), "*")).alias("value"),
                    )
                    .write.format("kafka")
                    .options(**settings.kafka.spark_options())
                    .option("topic", settings.kafka.alerts_topic)
                    .save()
                )
                alerts.unpersist()
                lap("alerts_topic")
            if counts.get("alert") or counts.get("bar"):
                append_once(
                    bronze_rows(batch),
                    settings.table_path(m.bronze_table),
                    f"{query}.bronze",
                    batch_id,
                    "event_date",
                )
                lap("bronze_table")
            if counts.get("quarantine"):
                append_once(
                    quarantine_rows(batch),
                    settings.table_path(m.quarantine_table),
                    f"{query}.quarantine",
                    batch_id,
                    None,
                )
                lap("quarantine_table")
            log.info("batch %d %s seconds %s", batch_id, counts, timings)
        finally:
            batch.unpersist()

    return sink


def ensure_tables(spark: SparkSession, settings: Settings) -> None:
    """Create the three Delta tables empty with their schemas if they do not exist."""
    m = settings.markets
    empty = spark.createDataFrame([], SCORED)
    for table, frame, partition in (
        (m.bronze_table, bronze_rows(empty), "event_date"),
        (m.quarantine_table, quarantine_rows(empty), None),
        (m.alerts_table, alert_rows(empty, -1), None),
    ):
        create_if_missing(frame, settings.table_path(table), partition)


def start(spark: SparkSession, settings: Settings, topic: str | None = None) -> StreamingQuery:
    """Start the speed layer on ``topic`` (the configured markets topic by default)."""
    from spark.ingest import kafka_stream

    m = settings.markets
    ensure_tables(spark, settings)
    raw = kafka_stream(
        spark, settings, topic or settings.kafka.markets_topic, m.max_offsets_per_trigger
    )
    scored = score_bars(
        decode_and_validate(raw, m.max_payload_bytes),
        rule_params(m),
        int(m.flush_after_seconds * 1000),
    )
    return (
        scored.writeStream.queryName(m.query_name)
        .option("checkpointLocation", settings.checkpoint_path(m.query_name))
        .trigger(processingTime=f"{int(m.trigger_seconds * 1000)} milliseconds")
        .foreachBatch(write_outputs(settings))
        .start()
    )
