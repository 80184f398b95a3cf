"""The speed layer: one streaming job type that runs any use case's spec.

``start(spark, settings, "<use case>")`` builds one streaming query, one checkpoint:

1. **read** the spec's topic (a per-trigger record cap from settings);
2. **decode**: the step either wants the spec's fields decoded and validated here, in
   Spark (:func:`decode_and_validate`: types, units' ranges, entity id, event time), or
   the Kafka text to parse itself (:func:`kafka_records`). Nothing is dropped: a record
   that is not valid carries its ``reason``;
3. **per entity**, the use case's :class:`~anomalake.speed.step.EntityStep` runs in
   Spark's state store (``applyInPandasWithState``), every record coming out once, scored
   or with its reason; an entity silent for the step's timeout is flushed or dropped;
4. **sink** (``foreachBatch``, :func:`write_outputs`): side by side accepted records to
   bronze and the rest to quarantine, then the detections folded into the alert
   lifecycle (one alert per entity and rule; :class:`spark.alerts.Lifecycle`) and, if
   declared, per-entity window counts. Every Delta append is exactly once per batch
   (:class:`~spark.tables.BatchAppender`), and so is the lifecycle's merge.

Backfills, backtests and offline replays call :func:`score_batch`: the same step per
entity from an empty state, so the same scores.
"""

from __future__ import annotations

import importlib
import logging
import operator
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from functools import reduce
from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupStateTimeout
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from anomalake.alerts.lifecycle import score_of_severity
from anomalake.alerts.store import AlertStore
from anomalake.errors import AnomalakeError
from anomalake.settings import Settings
from anomalake.speed.records import KAFKA_COLUMNS
from anomalake.speed.step import Column, EntityStep
from anomalake.usecases.spec import RecordLimits, UseCaseSpec
from spark.ingest import bronze_rows
from spark.streams.lifetime import BatchSink, release_on_stop
from spark.tables import (
    BatchAppender,
    batch_time,
    create_if_missing,
    stream_app_id,
    with_batch_columns,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery
    from pyspark.sql.streaming.state import GroupState

log = logging.getLogger(__name__)
SPARK_TYPES: dict[str, DataType] = {
    "string": StringType(),
    "double": DoubleType(),
    "bigint": LongType(),
    "int": IntegerType(),
    "boolean": BooleanType(),
    "timestamp": TimestampType(),
    "array<double>": ArrayType(DoubleType()),
    "array<string>": ArrayType(StringType()),
    "map<string,double>": MapType(StringType(), DoubleType()),
}
STATE = StructType([StructField("state", StringType())])
CORRUPT = "_corrupt_record"


def struct(cols: tuple[Column, ...]) -> StructType:
    """The Spark schema of a step's columns."""
    return StructType([StructField(c.name, SPARK_TYPES[c.type]) for c in cols])


def step_for(settings: Settings, spec: UseCaseSpec, stream: str | None = None) -> EntityStep:
    """The use case's step (its spec's ``entry_points.step``), built from settings.

    A spec that scores with a registered model gets the champion's scorer
    (:class:`ml.serving.ChampionScorer`), loaded lazily where the step runs.
    """
    module, _, name = spec.entry_points.step.partition(":")
    step_class = getattr(importlib.import_module(module), name)
    if spec.order.policy not in step_class.orders:
        raise AnomalakeError(
            f"{spec.name} declares order {spec.order.policy!r}; its step {name} implements "
            f"{', '.join(step_class.orders) or 'none'}",
            f"set {spec.name}'s order.policy to one of those, or give it a step that reorders",
        )
    if not step_class.decoded and spec.event_time.timezone != "UTC":
        raise AnomalakeError(
            f"{spec.name} declares event_time.timezone {spec.event_time.timezone!r}; its step "
            f"{name} parses records itself and reads times without an offset as UTC",
            "write the offset into the times, or leave event_time.timezone at UTC",
        )
    model = None
    if spec.scorer.model is not None:
        from ml.serving import ChampionScorer

        model = ChampionScorer.of_spec(settings, spec, stream)
    step: EntityStep = step_class.from_settings(settings, stream, model)
    return step


# --- decode ------------------------------------------------------------------------------
def _kafka_text() -> list[Any]:
    """``raw_value``, ``key`` and the Kafka coordinates of Kafka rows.

    Bytes that are not UTF-8 become U+FFFD, which validation quarantines: Arrow, between
    Spark and the Python step, refuses invalid UTF-8.
    """
    return [
        F.make_valid_utf8(F.col("value").cast("string")).alias("raw_value"),
        F.make_valid_utf8(F.col("key").cast("string")).alias("key"),
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
    ]


def kafka_records(raw: DataFrame) -> DataFrame:
    """Kafka rows as the text columns a step that parses records itself reads."""
    return raw.select(*_kafka_text())


def stored_as_records(stored: DataFrame, value: list[Any], key: str) -> DataFrame:
    """Stored rows turned back into the records a step reads (a backfill's, a backtest's).

    ``value``: the columns of the record's JSON value; ``key``: the column of its Kafka key.
    The Kafka coordinates are the stored ones; there is no Kafka timestamp.
    """
    return stored.select(
        F.to_json(F.struct(*value)).alias("raw_value"),
        F.col(key).alias("key"),
        "topic",
        "partition",
        "offset",
        F.lit(None).cast("timestamp").alias("kafka_timestamp"),
    )


def decode_and_validate(raw: DataFrame, spec: UseCaseSpec) -> DataFrame:
    """Kafka records -> the spec's fields typed, with ``reason`` null or every problem found.

    Problems: oversized payload, invalid UTF-8, malformed JSON, duplicate keys, an
    unsupported schema version, missing fields, an entity that is not an entity id (empty,
    blank, an object), values of the wrong type (numbers beyond int64 for an int), NaN,
    values outside the field's declared range or beyond the spec's
    ``limits.max_abs_value``, unparsable event times, event times out of the limits or
    too far after the record's Kafka timestamp. Nothing is dropped; an out-of-range event
    time is null.

    Columns: the entity, ``event_time``, each field, ``schema_version``, ``reason``,
    ``raw_value`` (kept for rejected records), ``key`` and the Kafka coordinates.
    """
    limits = spec.limits
    earliest, latest = limits.event_time_bounds()
    entity, time_field = spec.entity, spec.event_time.field
    text_fields = ("v", entity, time_field, *spec.fields)
    as_text = StructType(
        [StructField(n, StringType()) for n in text_fields] + [StructField(CORRUPT, StringType())]
    )
    df = raw.select(
        *_kafka_text(),
        F.length("value").alias("_bytes"),
        F.is_valid_utf8(F.col("value").cast("string")).alias("_utf8"),
    )
    # One parse: text that is not a JSON object lands whole in the corrupt-record field.
    j = F.from_json("raw_value", as_text, {"columnNameOfCorruptRecord": CORRUPT})
    df = df.select("*", j.alias("j"), (j.isNull() | j[CORRUPT].isNotNull()).alias("_not_object"))
    is_object = ~F.col("_not_object")
    keys = F.json_object_keys("raw_value")
    version = F.col("j.v").try_cast("int")
    max_bytes = spec.max_payload_bytes
    problems = [
        F.when(
            F.col("_bytes") > max_bytes,
            F.format_string("oversized payload: %d bytes > %d", "_bytes", F.lit(max_bytes)),
        ),
        F.when(~F.col("_utf8"), F.lit("invalid UTF-8")),
        F.when(F.col("_not_object"), F.lit("malformed JSON: not an object")),
        F.when(
            is_object & (F.size(keys) != F.size(F.array_distinct(keys))),
            F.lit("duplicate field in the JSON object"),
        ),
        F.when(
            is_object & (version.isNull() | (version != spec.schema_version)),
            F.format_string("unsupported schema version: %s", F.coalesce("j.v", F.lit("none"))),
        ),
    ]
    required = [entity, time_field, *(n for n, f in spec.fields.items() if f.required)]
    for name in required:
        missing = is_object & F.col(f"j.`{name}`").isNull()
        problems.append(F.when(missing, F.lit(f"missing field {name}")))
    entity_text = F.col(f"j.`{entity}`")
    event_time = _event_time(
        F.col(f"j.`{time_field}`"), spec.event_time.format, spec.event_time.timezone
    )
    seconds = F.unix_timestamp(event_time)
    problems += [
        F.when(
            entity_text.isNotNull() & ~entity_text.rlike(limits.entity_pattern),
            F.format_string(f"{entity} '%s' is not an entity id", F.substring(entity_text, 1, 40)),
        ),
        F.when(
            F.col(f"j.`{time_field}`").isNotNull() & event_time.isNull(),
            F.format_string("unparsable timestamp: '%s'", F.substring(f"j.`{time_field}`", 1, 40)),
        ),
        F.when(
            (seconds < earliest) | (seconds > latest),
            F.format_string("event time out of range: %s", f"j.`{time_field}`"),
        ),
        F.when(
            seconds > F.unix_timestamp("kafka_timestamp") + limits.max_future_seconds,
            F.format_string(
                "event time in the future: %s is more than %d s after the record's Kafka timestamp",
                f"j.`{time_field}`",
                F.lit(int(limits.max_future_seconds)),
            ),
        ),
    ]
    typed = {}
    for name, field in spec.fields.items():
        value, checks = _typed_field(F.col(f"j.`{name}`"), name, field, limits)
        typed[name] = value
        problems += checks
    reason = F.concat_ws("; ", *problems)
    # out of range, the time is null: pandas (in the Python step) holds 1677 to 2262 only
    in_range = event_time.isNotNull() & (seconds >= earliest) & (seconds <= latest)
    return df.select(
        entity_text.alias(entity),
        F.when(in_range, event_time).alias("event_time"),
        *(value.alias(name) for name, value in typed.items()),
        version.alias("schema_version"),
        F.when(reason != "", reason).alias("reason"),
        F.when(reason != "", F.col("raw_value")).alias("raw_value"),
        *KAFKA_COLUMNS,
    )


#: An ISO 8601 time that names its offset (``Z``, ``+05:30``, ``-0800``).
_OFFSET = r"(?i)(z|[+-]\d{2}(:?\d{2})?)$"


def _event_time(text: Any, written: str, timezone: str = "UTC") -> Any:
    """The event time column from its JSON text, as the spec says it is written.

    An ISO 8601 time without an offset is a wall-clock time in ``timezone`` (the session
    reads times in UTC: spark.session).
    """
    if written == "unix_seconds":
        return F.timestamp_seconds(text.try_cast("decimal(20,6)"))
    parsed = text.try_cast("timestamp")
    if timezone == "UTC":
        return parsed
    return F.when(F.trim(text).rlike(_OFFSET), parsed).otherwise(
        F.to_utc_timestamp(parsed, timezone)
    )


def _typed_field(raw: Any, name: str, field: Any, limits: RecordLimits) -> tuple[Any, list[Any]]:
    """A field's typed column and the reasons it is not valid, from the spec's declaration."""
    if field.type == "string":
        return raw, []
    if field.type == "timestamp":
        value = raw.try_cast("timestamp")
        bad = F.when(
            raw.isNotNull() & value.isNull(),
            F.format_string(f"bad type for {name}: '%s'", F.substring(raw, 1, 40)),
        )
        return value, [bad]
    shown = F.substring(raw, 1, 40)
    if field.type == "int":
        number = raw.try_cast("decimal(38,6)")
        value = number.try_cast("long")
        checks = [
            F.when(
                raw.isNotNull() & (number.isNull() | (number != F.floor(number))),
                F.format_string(f"bad type for {name}: '%s'", shown),
            ),
            F.when(
                F.abs(number) > limits.max_abs_value,
                F.format_string(f"{name} out of range: %s", shown),
            ),
        ]
    else:
        number = raw.try_cast("double")
        value = number
        checks = [
            F.when(
                raw.isNotNull() & number.isNull(),
                F.format_string(f"bad type for {name}: '%s'", shown),
            ),
            F.when(F.isnan(number), F.lit(f"NaN in {name}")),
            F.when(
                ~F.isnan(number) & (F.abs(number) > limits.max_abs_value),
                F.format_string(f"{name} out of range: %s", shown),
            ),
        ]
    bounds = ((field.min_exclusive, operator.le, ">"), (field.min, operator.lt, ">="))
    for bound, outside, within in (*bounds, (field.max, operator.gt, "<=")):
        if bound is not None:
            reason = F.format_string(f"{name} must be {within} {bound:g}: %s", shown)
            checks.append(F.when(outside(number, bound), reason))
    return value, checks


def decoded(raw: DataFrame, spec: UseCaseSpec, step: EntityStep) -> DataFrame:
    """What ``step`` reads from Kafka rows: the spec's fields decoded, or the Kafka text."""
    return decode_and_validate(raw, spec) if step.decoded else kafka_records(raw)


# --- per entity --------------------------------------------------------------------------
def state_function(step: EntityStep) -> Any:
    """The per-entity function ``applyInPandasWithState`` calls: the step on its state."""

    def run(
        key: tuple[Any, ...], batches: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        stored = state.get[0] if state.exists else None
        if state.hasTimedOut:
            kept, out, again = step.on_timeout(stored)
            if kept is None:
                state.remove()
            else:
                state.update((kept,))
                if again is not None:
                    state.setTimeoutDuration(again)
            if out is not None and len(out):
                yield out
            return
        chunks = list(batches)
        records = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
        keyed = key[0] is not None
        kept, out = step.run(stored, records, keyed=keyed)
        if keyed and kept is not None and step.stateful:
            state.update((kept,))
            after = step.timeout_ms()
            if after is not None:
                state.setTimeoutDuration(after)
        if len(out):
            yield out

    return run


def score_stream(records: DataFrame, step: EntityStep) -> DataFrame:
    """Every record once: through its entity's step in the state store, or with a reason."""
    timeout = (
        GroupStateTimeout.ProcessingTimeTimeout
        if step.timeout_ms() is not None
        else GroupStateTimeout.NoTimeout
    )
    return records.groupBy(step.group_by).applyInPandasWithState(
        state_function(step),
        outputStructType=struct(step.columns),
        stateStructType=STATE,
        outputMode="append",
        timeoutConf=timeout,
    )


def score_batch(records: DataFrame, step: EntityStep) -> DataFrame:
    """The stream's step over a static DataFrame: each entity's records as one batch.

    From an empty state, all pending records evaluated at the end (``flush``); every
    input record comes out once, scored or with its reason. ``records`` has the columns
    the step reads (:func:`decoded`), in the order the stream took them.
    """

    def per_entity(key: tuple[Any, ...], records: pd.DataFrame) -> pd.DataFrame:
        return step.run(None, records, keyed=key[0] is not None, flush=True)[1]

    return records.groupBy(step.group_by).applyInPandas(per_entity, schema=struct(step.columns))


# --- outputs -----------------------------------------------------------------------------
def quarantine_rows(scored: DataFrame, step: EntityStep) -> DataFrame:
    """Records that are not accepted, with the raw value, the reason and where they came from."""
    return scored.where(F.col("reason").isNotNull()).select(
        "raw_value",
        "reason",
        step.entity,
        F.col(step.event_time).alias("event_time"),
        *KAFKA_COLUMNS,
        batch_time(scored).alias("quarantined_at"),
    )


def accepted_rows(scored: DataFrame, step: EntityStep) -> DataFrame:
    """Accepted records (no ``reason``) with their event date and ingestion time (bronze)."""
    return bronze_rows(scored, step.event_time)


def detections(scored: DataFrame, step: EntityStep, cuts: tuple[float, float, float]) -> DataFrame:
    """The alert lifecycle's detections (:data:`spark.alerts.DETECTIONS`) of scored rows.

    One per record whose anomaly flag is set (rule ``anomaly_rule``, its score) and one per
    rule fired on it; a fired rule's score is the lowest of its declared severity under
    the alert ``cuts`` (so its alert has that severity), else the record's score.
    """
    d = step.detections
    accepted = scored.where(F.col("reason").isNull())
    details = F.to_json(F.struct(*d.details)) if d.details else F.lit("{}")
    origin = F.col("origin") if "origin" in step.names else F.lit("live")
    score = F.col(d.score).cast("double") if d.score else F.lit(None).cast("double")

    def detection(rows: DataFrame, rule: Any, rule_score: Any) -> DataFrame:
        return rows.select(
            F.col(step.entity).alias("entity"),
            rule.alias("rule"),
            rule_score.cast("double").alias("score"),
            F.col(step.event_time).alias("event_time"),
            origin.alias("origin"),
            details.alias("details"),
        )

    parts = []
    if d.anomaly:
        parts.append(detection(accepted.where(F.col(d.anomaly)), F.lit(d.anomaly_rule), score))
    fired = _fired_rules(d)
    if fired is not None:
        rule = F.col("_rule")
        rule_score = score
        if d.rule_severity:
            lookup = F.create_map(
                *(
                    x
                    for r, s in d.rule_severity.items()
                    for x in (F.lit(r), F.lit(score_of_severity(s, cuts)))
                )
            )
            rule_score = F.coalesce(lookup[rule], score)
        parts.append(detection(accepted.withColumn("_rule", F.explode(fired)), rule, rule_score))
    if not parts:
        raise ValueError(f"the step of {step.entity}s declares no detections")
    return reduce(DataFrame.unionByName, parts)


def _fired_rules(d: Any) -> Any:
    """An array column of the rules fired on a row (its rule list and its flags), or None."""
    arrays = []
    if d.rules:
        arrays.append(F.coalesce(F.col(d.rules), F.array().cast("array<string>")))
    if d.flags:
        flagged = F.array(*(F.when(F.col(c), F.lit(r)) for r, c in d.flags.items()))
        arrays.append(F.filter(flagged, lambda r: r.isNotNull()))
    if not arrays:
        return None
    return arrays[0] if len(arrays) == 1 else F.concat(*arrays)


def window_counts(scored: DataFrame, step: EntityStep, minutes: int) -> DataFrame:
    """Records, anomalies and the highest score per entity and ``minutes``-long window."""
    window = F.window(step.event_time, f"{minutes} minutes")
    d = step.detections
    flagged = F.col(d.anomaly) if d.anomaly else F.lit(False)
    score = F.col(d.score) if d.score else F.lit(None).cast("double")
    return (
        scored.groupBy(step.entity, window.alias("w"))
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.count(F.when(flagged, 1)).alias("anomalies"),
            F.max(score).alias("max_score"),
        )
        .select(
            step.entity,
            F.col("w.start").alias("window_start"),
            F.col("w.end").alias("window_end"),
            "events",
            "anomalies",
            "max_score",
        )
    )


def _update_counts(
    accepted: DataFrame, step: EntityStep, path: str, bronze: str, minutes: int
) -> None:
    """Recompute the counts of the windows ``accepted`` touched, from bronze; MERGE them.

    Recomputed rather than incremented, so a replayed batch leaves them as they were.
    """
    from delta.tables import DeltaTable

    spark = accepted.sparkSession
    touched = accepted.select(
        step.entity, F.window(step.event_time, f"{minutes} minutes").alias("w")
    )
    touched = touched.select(step.entity, F.col("w.start").alias("window_start")).distinct()
    history = (
        spark.read.format("delta")
        .load(bronze)
        .join(F.broadcast(touched.select(step.entity).distinct()), step.entity)
    )
    counts = window_counts(history, step, minutes).join(touched, [step.entity, "window_start"])
    on = f"t.`{step.entity}` = c.`{step.entity}` AND t.window_start = c.window_start"
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(counts.alias("c"), on)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def alert_settings(settings: Settings, spec: UseCaseSpec) -> Settings:
    """``settings`` with the spec's own severity cuts and suppression, where it sets them."""
    policy = spec.alerting
    own = {
        "severity_cuts": policy.severity_cuts,
        "suppress_seconds": policy.suppress_seconds,
    }
    changed = {k: v for k, v in own.items() if v is not None}
    if not changed:
        return settings
    return settings.model_copy(update={"alerts": settings.alerts.model_copy(update=changed)})


def _side_by_side(
    pool: ThreadPoolExecutor,
    batch: DataFrame,
    work: list[tuple[Any, tuple[Any, ...]]],
    batch_id: int,
) -> dict[str, float]:
    """Run each ``(function, args)`` in ``pool``, wait for all; raise the first failure.

    Each thread gets a copy of the calling thread's Spark job properties (the micro-batch's).
    """
    from pyspark.util import inheritable_thread_target

    runs: list[Future[dict[str, float]]] = [
        pool.submit(inheritable_thread_target(batch.sparkSession)(function), *args)
        for function, args in work
    ]
    wait(runs)
    failed = [e for r in runs if (e := r.exception()) is not None]
    for error in failed[1:]:
        log.error("batch %d: a second sink path failed too: %r", batch_id, error)
    if failed:
        raise failed[0]
    timings: dict[str, float] = {}
    for done in runs:
        timings.update(done.result())
    return timings


class Tables:
    """The Delta tables one use case's query writes (``{stream}`` filled in)."""

    def __init__(self, settings: Settings, spec: UseCaseSpec, stream: str | None) -> None:
        self.bronze = spec.named(spec.bronze_table, stream)
        self.quarantine = spec.named(spec.quarantine_table, stream)
        self.alerts = spec.named(spec.alerts_table, stream)
        self.counts = spec.named(spec.counts_table, stream) if spec.counts_table else None
        self.query = spec.named(spec.query_name, stream)
        self.path = settings.table_path


def write_outputs(
    settings: Settings, spec: UseCaseSpec, step: EntityStep, stream: str | None = None
) -> BatchSink:
    """The ``foreachBatch`` sink: bronze, quarantine, the alert lifecycle, window counts.

    The batch is cached for what follows: bronze and quarantine are written side by side
    first (the first of them computes the batch), then the detections are folded into
    the alerts table and the changed alerts go to the outbox, the alerts topic and people
    (:class:`spark.alerts.Lifecycle`): an alert sent has its records stored. Window
    counts, if declared, are recomputed from bronze last. An empty part commits nothing.
    """
    from spark.alerts import Lifecycle

    settings = alert_settings(settings, spec)
    tables = Tables(settings, spec, stream)
    appender = BatchAppender()
    lifecycle = Lifecycle(settings, tables.alerts, spec.name, spec.alerting)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"{tables.query}-sink")
    cuts = settings.alerts.severity_cuts

    def append(
        rows: DataFrame, table: str, app: str, batch_id: int, partition: str | None = None
    ) -> dict[str, float]:
        started = time.perf_counter()
        appender.append(rows, tables.path(table), f"{app}.{table}", batch_id, partition)
        return {table: time.perf_counter() - started}

    def sink(scored: DataFrame, batch_id: int) -> None:
        # the batch's id and time as columns: as literals, they would make each batch
        # compile its own code (spark.tables.with_batch_columns)
        batch = with_batch_columns(scored, batch_id, datetime.now(UTC)).persist()
        try:
            app = stream_app_id(batch.sparkSession, tables.query)
            accepted = accepted_rows(batch, step)
            side: list[tuple[Any, tuple[Any, ...]]] = [
                (append, (accepted, tables.bronze, app, batch_id, "event_date")),
                (append, (quarantine_rows(batch, step), tables.quarantine, app, batch_id)),
            ]
            timings = _side_by_side(pool, batch, side, batch_id)
            # after bronze: an alert people hear of has its records stored
            recorded = time.perf_counter()
            lifecycle.record(detections(batch, step, cuts), batch_id, tables.query)
            timings["alert_lifecycle"] = time.perf_counter() - recorded
            if tables.counts is not None:
                counted = time.perf_counter()
                _update_counts(
                    accepted,
                    step,
                    tables.path(tables.counts),
                    tables.path(tables.bronze),
                    spec.counts_window_minutes,
                )
                timings[tables.counts] = time.perf_counter() - counted
            log.info("batch %d seconds %s", batch_id, {k: round(v, 3) for k, v in timings.items()})
        finally:
            batch.unpersist()

    def release() -> None:
        pool.shutdown(wait=False)
        lifecycle.close()

    return BatchSink(sink, release)


def ensure_tables(
    spark: SparkSession, settings: Settings, spec: UseCaseSpec, step: EntityStep, stream: str | None
) -> None:
    """Create the use case's tables empty with their schemas if they do not exist."""
    tables = Tables(settings, spec, stream)
    empty = spark.createDataFrame([], struct(step.columns))
    wanted: list[tuple[str, DataFrame, str | None]] = [
        (tables.bronze, accepted_rows(empty, step), "event_date"),
        (tables.quarantine, quarantine_rows(empty, step), None),
    ]
    if tables.counts is not None:
        wanted.append((tables.counts, window_counts(empty, step, spec.counts_window_minutes), None))
    for table, frame, partition in wanted:
        create_if_missing(frame, settings.table_path(table), partition)
    AlertStore(settings.table_path(tables.alerts)).ensure()


def start(
    spark: SparkSession,
    settings: Settings,
    use_case: str,
    stream: str | None = None,
    topic: str | None = None,
) -> StreamingQuery:
    """Start the speed layer of ``use_case`` (its ``stream``) on ``topic`` (the spec's)."""
    from spark.ingest import kafka_stream

    spec = settings.use_case(use_case)
    step = step_for(settings, spec, stream)
    tables = Tables(settings, spec, stream)
    ensure_tables(spark, settings, spec, step, stream)
    raw = kafka_stream(
        spark, settings, topic or spec.topic_of(stream), spec.max_offsets_per_trigger
    )
    scored = score_stream(decoded(raw, spec, step), step)
    sink = write_outputs(settings, spec, step, stream)
    writer = (
        scored.writeStream.queryName(tables.query)
        .option("checkpointLocation", settings.checkpoint_path(tables.query))
        .trigger(processingTime=f"{int(spec.trigger_seconds * 1000)} milliseconds")
        .foreachBatch(sink.write)
    )
    # The state's partitions are the shuffle partitions the query starts with (a restart
    # keeps the checkpoint's); the session's setting is restored for other jobs.
    key = "spark.sql.shuffle.partitions"
    session_value = str(spark.conf.get(key))
    spark.conf.set(key, str(settings.state_partitions(spec)))
    try:
        query = writer.start()
    except Exception:
        sink.release()
        raise
    finally:
        spark.conf.set(key, session_value)
    release_on_stop(spark, query, sink.release)
    return query
