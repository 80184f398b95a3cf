"""The markets speed layer: Kafka bars -> validation -> per-symbol rule state -> Delta + alerts.

One streaming query, one checkpoint:

1. :func:`decode_and_validate` (stateless) types each Kafka record with an explicit schema
   and gives every record that cannot be a bar a ``reason``;
2. :func:`score_bars` groups by symbol and runs the rules of
   :mod:`anomalake.detection.markets` in Spark's state store
   (``applyInPandasWithState``): valid bars are queued behind the symbol's
   event-time watermark, evaluated in minute order and emitted scored; invalid, duplicate
   and late records pass through with their reason;
3. :func:`write_outputs` (``foreachBatch``): one job scores the batch (cached) and appends
   fired rules to the alerts table; then, side by side, the alerts go to the alerts topic
   from the driver (at least once, keyed by a deterministic ``alert_id``), bars to the
   bronze table and the rest to quarantine — each Delta commit marked with the batch id
   (:class:`~spark.tables.BatchAppender`), so a batch replayed after a crash is written
   once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupStateTimeout
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from anomalake.detection.markets import (
    Columns,
    MarketRuleParams,
    SymbolState,
    accept_columns,
    concat_columns,
    evaluate_columns,
    row_count,
    rule_params,
)
from anomalake.producer import SCHEMA_VERSION
from anomalake.settings import RecordLimits, Settings
from anomalake.speed.guard import failure_reason, guarded
from spark.ingest import bronze_rows
from spark.schemas import KAFKA_RECORD_FIELDS
from spark.streams.lifetime import BatchSink, release_on_stop
from spark.tables import (
    BATCH_ID,
    BatchAppender,
    batch_time,
    create_if_missing,
    stream_app_id,
    with_batch_columns,
)

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
CORRUPT = "_corrupt_record"
RAW_BAR_OR_CORRUPT = StructType([*RAW_BAR.fields, StructField(CORRUPT, StringType())])
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


def decode_and_validate(
    raw: DataFrame, max_payload_bytes: int, limits: RecordLimits | None = None
) -> DataFrame:
    """Kafka records -> typed bars with ``reason`` null, or with every problem found.

    Problems: oversized payload, invalid UTF-8, malformed JSON, unsupported schema version,
    missing fields, a symbol that is not an entity id (empty, blank, an object), values of
    the wrong type, unparsable timestamps, event times out of ``limits`` or too far after
    the record's Kafka timestamp, NaN, infinite, non-positive or out-of-range prices,
    negative or out-of-range volumes (beyond int64 too). Nothing is dropped.
    """
    limits = limits or RecordLimits()
    earliest, latest = limits.event_time_bounds()
    # Bytes that are not UTF-8 become U+FFFD (the record is quarantined for them): Arrow,
    # between Spark and the Python step, refuses invalid UTF-8.
    text = F.make_valid_utf8(F.col("value").cast("string"))
    # One parse: text that is not a JSON object lands whole in the corrupt-record field.
    j = F.from_json(text, RAW_BAR_OR_CORRUPT, {"columnNameOfCorruptRecord": CORRUPT})
    df = raw.select(
        text.alias("raw_value"),
        F.length("value").alias("_bytes"),
        F.is_valid_utf8(F.col("value").cast("string")).alias("_utf8"),
        j.alias("j"),
        (j.isNull() | j[CORRUPT].isNotNull()).alias("_not_object"),
        F.make_valid_utf8(F.col("key").cast("string")).alias("key"),
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
        F.when(~F.col("_utf8"), F.lit("invalid UTF-8")),
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
    symbol = F.col("j.symbol")
    seconds = F.unix_timestamp(event_time)
    problems += [
        F.when(
            symbol.isNotNull() & ~symbol.rlike(limits.entity_pattern),
            F.format_string("symbol '%s' is not an entity id", F.substring(symbol, 1, 40)),
        ),
        F.when(
            F.col("j.timestamp").isNotNull() & event_time.isNull(),
            F.format_string("unparsable timestamp: '%s'", F.substring("j.timestamp", 1, 40)),
        ),
        F.when(
            (seconds < earliest) | (seconds > latest),
            F.format_string("event time out of range: %s", "j.timestamp"),
        ),
        F.when(
            seconds > F.unix_timestamp("kafka_timestamp") + limits.max_future_seconds,
            F.format_string(
                "event time in the future: %s is more than %d s after the record's Kafka timestamp",
                "j.timestamp",
                F.lit(int(limits.max_future_seconds)),
            ),
        ),
    ]
    for name, value in typed.items():
        raw_field = F.col(f"j.{name}")
        problems += [
            F.when(
                raw_field.isNotNull() & value.isNull(),
                F.format_string(f"bad type for {name}: '%s'", raw_field),
            ),
            F.when(F.isnan(value), F.lit(f"NaN price in {name}")),
            F.when(value <= 0, F.format_string(f"non-positive price in {name}: %s", raw_field)),
            F.when(
                ~F.isnan(value) & (F.abs(value) > limits.max_abs_value),
                F.format_string(f"price out of range in {name}: %s", F.substring(raw_field, 1, 40)),
            ),
        ]
    problems += [
        F.when(
            F.col("j.volume").isNotNull()
            & (volume_num.isNull() | (volume_num != F.floor(volume_num))),
            F.format_string("bad type for volume: '%s'", F.substring("j.volume", 1, 40)),
        ),
        F.when(volume_num < 0, F.format_string("negative volume: %s", "j.volume")),
        F.when(
            volume_num > limits.max_abs_value,
            F.format_string("volume out of range: %s", F.substring("j.volume", 1, 40)),
        ),
    ]
    reason = F.concat_ws("; ", *problems)
    # out of range, the time is null: pandas (in the Python step) holds 1677 to 2262 only
    in_range = event_time.isNotNull() & (seconds >= earliest) & (seconds <= latest)
    out = df.select(
        F.col("j.symbol").alias("symbol"),
        F.when(in_range, event_time).alias("event_time"),
        F.when(in_range, F.floor(seconds / 60)).cast("long").alias("minute"),
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


_SPARK_DTYPES: dict[type[DataType], str] = {TimestampType: "datetime64[ns]", DoubleType: "float64"}
#: The pandas dtype of each SCORED column (strings are objects).
SCORED_DTYPES: dict[str, Any] = {
    f.name: pd.api.types.pandas_dtype(
        NULLABLE_DTYPES.get(f.name) or _SPARK_DTYPES.get(type(f.dataType), "object")
    )
    for f in SCORED.fields
}
BAR_FIELDS = VALIDATED.fieldNames()


def _microseconds(times: Any) -> np.ndarray:
    """Timestamps as naive ``datetime64[ns]`` floored to the microsecond (tz-aware: UTC)."""
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = pd.Series(times).dt.tz_convert(None).to_numpy()
    ns = np.asarray(times, dtype="datetime64[ns]").view(np.int64)
    nat = np.datetime64("NaT", "ns").view(np.int64)
    return np.where(ns == nat, ns, ns // 1000 * 1000).view("datetime64[ns]")


def _typed(values: Any, name: str, n: int) -> Any:
    """Column ``name`` as an array of its :data:`SCORED_DTYPES` dtype (all null if None).

    Spark hands a nullable integer column over as floats when it has nulls (truncated here,
    as ``int()`` would) and timestamps as naive datetimes, to the microsecond.
    """
    dtype = SCORED_DTYPES[name]
    if values is None:
        if not isinstance(dtype, np.dtype):
            mask = np.ones(n, dtype=bool)
            return dtype.construct_array_type()(np.zeros(n, dtype=dtype.numpy_dtype), mask)
        return np.full(n, {"O": None, "M": np.datetime64("NaT")}.get(dtype.kind, np.nan), dtype)
    if name in TIME_COLUMNS:
        return _microseconds(values)
    if values.dtype == dtype:
        return values
    if dtype.kind == "i" and isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        mask = np.isnan(values) if values.dtype.kind == "f" else np.zeros(n, dtype=bool)
        whole = np.trunc(np.where(mask, 0, values)) if values.dtype.kind == "f" else values
        return dtype.construct_array_type()(whole.astype(dtype.numpy_dtype), mask)
    typed = pd.Series(values).astype(dtype)
    return typed.to_numpy() if isinstance(dtype, np.dtype) else typed.array


def _arrival_order(records: pd.DataFrame) -> np.ndarray | None:
    """Positions of ``records`` sorted stably by (partition, offset); None if already so."""
    p, o = records["partition"].to_numpy(), records["offset"].to_numpy()
    if not (p.dtype.kind in "iu" and o.dtype.kind in "iu"):  # maybe nulls: pandas' sort
        keys = records[["partition", "offset"]].reset_index(drop=True)
        return keys.sort_values(["partition", "offset"], kind="stable").index.to_numpy()
    if ((p[1:] > p[:-1]) | ((p[1:] == p[:-1]) & (o[1:] >= o[:-1]))).all():
        return None
    return np.lexsort((o, p))  # stable


def validated_columns(records: pd.DataFrame) -> Columns:
    """The VALIDATED columns of ``records`` in arrival order (partition, offset), typed."""
    order = _arrival_order(records)
    columns: Columns = {}
    for name in BAR_FIELDS:
        col = records[name]
        values = col.to_numpy() if isinstance(col.dtype, np.dtype) else col.array
        values = _typed(values, name, len(records))
        columns[name] = values if order is None else values[order]
    return columns


def scored_output(*parts: Columns) -> pd.DataFrame:
    """Columns of records (and rule columns), one part after the other, as a SCORED frame.

    Columns in SCORED's order and :data:`SCORED_DTYPES`; a column a part lacks is null there.
    """
    nonempty = [p for p in parts if row_count(p)] or [{}]
    typed = [
        {name: _typed(p.get(name), name, row_count(p)) for name in SCORED_DTYPES} for p in nonempty
    ]
    return pd.DataFrame(typed[0] if len(typed) == 1 else concat_columns(typed))


def score_arrivals(
    state: SymbolState,
    arrivals: pd.DataFrame,
    params: MarketRuleParams,
    *,
    keyed: bool = True,
    flush: bool = False,
) -> pd.DataFrame:
    """One symbol's arrivals through the rules: the step the stream and the batch share.

    Records are taken in arrival order (partition, offset); valid bars are queued in
    ``state`` (a duplicate or late bar comes back with its quarantine reason), invalid ones
    pass through with theirs, then every bar that is final is evaluated (all of them when
    ``flush``). ``keyed`` is false for records without a symbol (they cannot be queued).

    Returns:
        A frame of the SCORED schema (:func:`scored_output`): the records not queued, in
        arrival order, then the bars evaluated, in minute order.
    """
    records = validated_columns(arrivals)
    passed = pd.notna(records["reason"]) | (not keyed)
    # a bar without its minute, close or volume cannot be evaluated: refuse it here, not
    # when it is evaluated (a later micro-batch, where no record is to blame)
    missing = ~passed & (
        pd.isna(records["minute"]) | pd.isna(records["close"]) | pd.isna(records["volume"])
    )
    if missing.any():
        reason = records["reason"].copy()
        reason[missing] = "incomplete bar: minute, close or volume is null"
        records = {**records, "reason": reason}
        passed = passed | missing
    if keyed and not passed.all():
        queued = ~passed
        bars = records if queued.all() else {k: v[queued] for k, v in records.items()}
        reasons = accept_columns(state, bars)
        refused = pd.notna(reasons)
        if refused.any():
            where = np.flatnonzero(queued)[refused]
            reason, raw_value = records["reason"].copy(), records["raw_value"].copy()
            reason[where] = reasons[refused]
            raw_value[where] = None
            records = {**records, "reason": reason, "raw_value": raw_value}
            passed[where] = True
    rejected = {k: v[passed] for k, v in records.items()} if passed.any() else {}
    return scored_output(rejected, evaluate_columns(state, params, flush=flush))


def guarded_arrivals(
    stored: str | None,
    arrivals: pd.DataFrame,
    params: MarketRuleParams,
    *,
    keyed: bool = True,
    flush: bool = False,
) -> tuple[SymbolState, pd.DataFrame]:
    """:func:`score_arrivals` from the stored state, such that no record stops the stream.

    Through :func:`anomalake.speed.guard.guarded`: if the batch fails, its records are
    taken one by one and one that fails is quarantined (:func:`unscorable`) without
    changing the symbol's state.
    """
    return guarded(
        stored,
        arrivals,
        restore=lambda text: SymbolState.from_json(text) if text else SymbolState(),
        dump=lambda state: state.to_json(),
        step=lambda state, records: score_arrivals(state, records, params, keyed=keyed),
        reject=unscorable,
        finish=(
            (lambda state: scored_output(evaluate_columns(state, params, flush=True)))
            if flush
            else None
        ),
    )


def unscorable(record: pd.DataFrame, error: BaseException) -> pd.DataFrame:
    """A record the step could not take, as a SCORED row with the error as its reason.

    Its fields are kept as JSON text in ``raw_value``; one that does not fit its column is
    null there.
    """
    fields = {n: record[n].iloc[0] for n in BAR_FIELDS if n in record and n != "raw_value"}
    text = json.dumps({k: v for k, v in fields.items() if k != "reason"}, default=str)
    columns: Columns = {}
    for name in BAR_FIELDS:
        try:
            columns[name] = _typed(record[name].to_numpy() if name in record else None, name, 1)
        except Exception:  # noqa: BLE001 - a value that does not fit its column
            columns[name] = _typed(None, name, 1)
    columns["reason"] = np.array([failure_reason(error)], dtype=object)
    columns["raw_value"] = np.array([text[:4096]], dtype=object)
    return scored_output(columns)


#: How the state of a symbol whose pending bars were flushed is stored: the next
#: timeout, a whole ``state_ttl`` later with no bar in between, drops the state.
IDLE = "idle "


def make_state_function(params: MarketRuleParams, flush_after_ms: int, ttl_ms: int) -> Any:
    """The per-symbol function that ``applyInPandasWithState`` calls.

    A symbol idle for ``flush_after_ms`` has its pending bars evaluated (the timeout);
    idle for ``ttl_ms`` more, its state is dropped, so the state store holds only symbols
    heard from lately.
    """

    def step(
        key: tuple[Any, ...], batches: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        stored = state.get[0] if state.exists else None
        if stored is not None and stored.startswith(IDLE):
            if state.hasTimedOut:
                state.remove()
                return
            stored = stored[len(IDLE) :]
        if state.hasTimedOut:
            symbol_state = SymbolState.from_json(stored) if stored else SymbolState()
            scored = evaluate_columns(symbol_state, params, flush=True)
            state.update((IDLE + symbol_state.to_json(),))
            state.setTimeoutDuration(ttl_ms)
            if row_count(scored):
                yield scored_output(scored)
            return
        chunks = list(batches)
        incoming = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
        symbol_state, out = guarded_arrivals(stored, incoming, params, keyed=key[0] is not None)
        if key[0] is not None:
            state.update((symbol_state.to_json(),))
            state.setTimeoutDuration(flush_after_ms)
        if len(out):
            yield out

    return step


def score_batch(validated: DataFrame, params: MarketRuleParams) -> DataFrame:
    """The stream's scoring over a static DataFrame: every symbol's records as one batch.

    Same function as the speed layer (:func:`score_arrivals`), from an empty state, all
    bars flushed at the end; every input record comes out once, scored or quarantined.
    """

    def per_symbol(key: tuple[Any, ...], arrivals: pd.DataFrame) -> pd.DataFrame:
        return guarded_arrivals(None, arrivals, params, keyed=key[0] is not None, flush=True)[1]

    return validated.groupBy("symbol").applyInPandas(per_symbol, schema=SCORED)


def score_bars(
    validated: DataFrame, params: MarketRuleParams, flush_after_ms: int, ttl_ms: int
) -> DataFrame:
    """Run the rules per symbol in Spark's state store; every input record comes out once."""
    return validated.groupBy("symbol").applyInPandasWithState(
        make_state_function(params, flush_after_ms, ttl_ms),
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
        batch_time(scored).alias("quarantined_at"),
    )


def alert_rows(scored: DataFrame, batch_id: int | None = None) -> DataFrame:
    """One alert per bar on which A1 or A2 fired, with its reference values and batch.

    Detected at the micro-batch's time (:func:`~spark.tables.batch_time`), in the batch of
    ``scored``'s ``batch_id`` column (:func:`~spark.tables.with_batch_columns`), or of
    ``batch_id`` when it has none.
    """
    if BATCH_ID in scored.columns:
        batch = F.col(BATCH_ID)
    elif batch_id is not None:
        batch = F.lit(batch_id).cast("long")
    else:
        raise ValueError("alert_rows needs a batch: a batch_id column or argument")
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
        batch_time(scored).alias("detected_at"),
        batch.alias(BATCH_ID),
    )


def write_outputs(settings: Settings) -> BatchSink:
    """The ``foreachBatch`` sink: alerts first, then topic, bronze and quarantine side by side.

    One Spark job scores the batch (caching it) and appends its alerts to the alerts
    table, so an alert row waits for nothing else; then, in three threads, the alerts go
    to the topic (from the driver: confluent-kafka, keyed by ``alert_id``, at least once),
    bars to bronze and the rest to quarantine, and the batch lasts as long as the longest.
    An empty part commits nothing (Delta records no empty append). Each Delta append is
    exactly once per batch (:class:`~spark.tables.BatchAppender`).
    """
    from concurrent.futures import Future, ThreadPoolExecutor, wait

    from pyspark.util import inheritable_thread_target

    from anomalake.producer import Publisher
    from spark.alerts import publish

    m = settings.markets
    query = m.query_name
    appender = BatchAppender()
    publisher = Publisher(settings.kafka)
    pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix=f"{query}-sink")

    def topic_path(alerts: DataFrame) -> dict[str, float]:
        started = time.perf_counter()
        messages = alerts.select(
            "alert_id",
            F.to_json(F.struct(F.lit(SCHEMA_VERSION).alias("v"), "*")).alias("value"),
        ).toArrow()
        keys = messages.column("alert_id").to_pylist()
        values = messages.column("value").to_pylist()
        publish(settings, [(k, v.encode()) for k, v in zip(keys, values, strict=True)], publisher)
        return {"alerts_topic": time.perf_counter() - started}

    def table_path(
        rows: DataFrame, table: str, app: str, batch_id: int, partition: str | None = None
    ) -> dict[str, float]:
        started = time.perf_counter()
        appender.append(rows, settings.table_path(table), f"{app}.{table}", batch_id, partition)
        return {table: time.perf_counter() - started}

    def sink(scored: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        # the batch's id and time as columns: as literals, they would make each batch
        # compile its own code (spark.tables.with_batch_columns)
        batch = with_batch_columns(scored, batch_id, datetime.now(UTC)).persist()
        alerts = alert_rows(batch).persist()
        try:
            app = stream_app_id(batch.sparkSession, query)
            # One job scores the batch (cached for the paths below) and appends its alerts
            # (one file per state partition: no coalescing, which would score in one task).
            # A batch without alerts commits nothing: Delta records no empty append.
            path = settings.table_path(m.alerts_table)
            appender.append(alerts, path, f"{app}.{m.alerts_table}", batch_id, None, coalesce=False)
            timings = {"score_and_alerts_table": time.perf_counter() - started}

            # then side by side: alerts to the topic, bars to bronze, the rest to quarantine
            def side_by_side(path: Any, *args: Any) -> Future[dict[str, float]]:
                # a copy of this thread's job properties per path (cloned by the call)
                return pool.submit(inheritable_thread_target(batch.sparkSession)(path), *args)

            bronze, bad = bronze_rows(batch), quarantine_rows(batch)
            paths = [
                side_by_side(topic_path, alerts),
                side_by_side(table_path, bronze, m.bronze_table, app, batch_id, "event_date"),
                side_by_side(table_path, bad, m.quarantine_table, app, batch_id),
            ]
            wait(paths)
            failed = [e for p in paths if (e := p.exception()) is not None]
            for error in failed[1:]:
                log.error("batch %d: a second sink path failed too: %r", batch_id, error)
            if failed:
                raise failed[0]
            for done in paths:
                timings.update(done.result())
            rounded = {k: round(v, 3) for k, v in timings.items()}
            log.info("batch %d seconds %s", batch_id, rounded)
        finally:
            alerts.unpersist()
            batch.unpersist()

    def release() -> None:
        pool.shutdown(wait=False)
        publisher.close()

    return BatchSink(sink, release)


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
    raw = kafka_stream(spark, settings, topic or settings.markets.topic, m.max_offsets_per_trigger)
    scored = score_bars(
        decode_and_validate(raw, m.max_payload_bytes, m.limits),
        rule_params(m),
        int(m.flush_after_seconds * 1000),
        int(m.state_ttl_seconds * 1000),
    )
    sink = write_outputs(settings)
    writer = (
        scored.writeStream.queryName(m.query_name)
        .option("checkpointLocation", settings.checkpoint_path(m.query_name))
        .trigger(processingTime=f"{int(m.trigger_seconds * 1000)} milliseconds")
        .foreachBatch(sink.write)
    )
    # The state's partitions are the shuffle partitions the query starts with (a restart
    # keeps the checkpoint's); the session's setting is restored for other jobs.
    key = "spark.sql.shuffle.partitions"
    session_value = str(spark.conf.get(key))
    spark.conf.set(key, str(settings.markets_state_partitions))
    try:
        query = writer.start()
    except Exception:
        sink.release()
        raise
    finally:
        spark.conf.set(key, session_value)
    release_on_stop(spark, query, sink.release)
    return query
