"""The infrastructure speed layer: sensor readings from Kafka, the detector set per asset.

One streaming query, one checkpoint. Records are grouped by their Kafka key (the asset)
and handed, in offset order, to one pandas function in Spark's state store
(``applyInPandasWithState``) that

1. parses and validates each record (:func:`anomalake.speed.infra.parse_reading`):
   oversized, not a JSON object, unsupported schema version, missing asset or a key that
   differs from it, unparsable time,
   a missing, non-numeric or non-finite sensor — each a ``reason``, never a silent drop;
2. rejects a reading whose time is not after the asset's last reading (a repeat or an
   out-of-order reading: time-based detectors need time to move forward);
3. scores the rest with the asset's :class:`~anomalake.detection.detector_set.DetectorSet`,
   whose state is kept between micro-batches (:func:`~anomalake.speed.infra.score_readings`).

The ``foreachBatch`` sink appends readings with their scores to ``bronze_infra`` and the
rest to ``quarantine_infra`` (idempotent on the batch id), and records anomalies and fired
rules as detections in the alert lifecycle (:mod:`spark.alerts`): one open alert per asset
and rule, published to the alerts topic and queued for people unless the readings came
from a replay. A backfill (:func:`backfill_scores`) and an offline replay
(:func:`anomalake.speed.infra.score_messages`) run the same
:func:`~anomalake.speed.infra.score_readings`, so they give the same scores.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupStateTimeout
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from anomalake.alerts.lifecycle import score_of_severity
from anomalake.detection.detector_set import DetectorSetConfig
from anomalake.settings import RecordLimits, Settings
from anomalake.speed.infra import (
    COLUMNS,
    AssetState,
    Reading,
    guarded_records,
    load_config,
    score_readings,
)
from spark.ingest import bronze_rows
from spark.schemas import KAFKA_RECORD_FIELDS
from spark.tables import BatchAppender, create_if_missing, stream_app_id

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery
    from pyspark.sql.streaming.state import GroupState

log = logging.getLogger(__name__)
#: The alert rule name of a reading whose combined score crossed the threshold.
SCORE_RULE = "anomaly_score"
SCORED = StructType(
    [
        StructField("asset", StringType()),
        StructField("event_time", TimestampType()),
        StructField("values", ArrayType(DoubleType())),
        StructField("origin", StringType()),
        StructField("score", DoubleType()),
        StructField("scores", MapType(StringType(), DoubleType())),
        StructField("anomaly", BooleanType()),
        StructField("rules", ArrayType(StringType())),
        StructField("reason", StringType()),
        StructField("raw_value", StringType()),
        *KAFKA_RECORD_FIELDS,
    ]
)
STATE = StructType([StructField("state", StringType())])


def make_state_function(
    config: DetectorSetConfig,
    sensors: tuple[str, ...],
    max_payload_bytes: int,
    limits: RecordLimits | None = None,
    ttl_ms: int | None = None,
) -> Any:
    """The per-asset function ``applyInPandasWithState`` calls.

    An asset silent for ``ttl_ms`` (processing time) has its state dropped: the state
    store holds only assets heard from lately. Its detectors learn afresh if it returns.
    """

    def step(
        key: tuple[Any, ...], batches: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        if state.hasTimedOut:
            state.remove()
            return
        records = pd.concat(list(batches), ignore_index=True)
        keyed = key[0] is not None
        stored = state.get[0] if state.exists else None
        current, out = guarded_records(
            stored, config, records, sensors, max_payload_bytes, limits, keyed=keyed
        )
        if current is not None:
            state.update((current.to_json(),))
            if ttl_ms is not None:
                state.setTimeoutDuration(ttl_ms)
        yield out

    return step


def kafka_records(raw: DataFrame) -> DataFrame:
    """Kafka rows as the text columns the state function reads."""
    return raw.select(
        # bytes that are not UTF-8 become U+FFFD, which validation quarantines
        F.make_valid_utf8(F.col("value").cast("string")).alias("raw_value"),
        F.make_valid_utf8(F.col("key").cast("string")).alias("key"),
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
    )


def score_stream(records: DataFrame, settings: Settings, config: DetectorSetConfig) -> DataFrame:
    """Every record once: scored by its asset's detectors in the state store, or with a reason."""
    i = settings.infra
    return records.groupBy("key").applyInPandasWithState(
        make_state_function(
            config, i.sensors, i.max_payload_bytes, i.limits, int(i.state_ttl_seconds * 1000)
        ),
        outputStructType=SCORED,
        stateStructType=STATE,
        outputMode="append",
        timeoutConf=GroupStateTimeout.ProcessingTimeTimeout,
    )


def quarantine_rows(scored: DataFrame) -> DataFrame:
    """Records that are not accepted readings, with the raw value and the reason."""
    return scored.where(F.col("reason").isNotNull()).select(
        "raw_value",
        "reason",
        "asset",
        "event_time",
        *(f.name for f in KAFKA_RECORD_FIELDS),
        F.current_timestamp().alias("quarantined_at"),
    )


def detections(
    scored: DataFrame, config: DetectorSetConfig, cuts: tuple[float, float, float]
) -> DataFrame:
    """Alert-lifecycle detections: one per anomalous reading, and one per fired rule.

    Columns ``entity, rule, score, event_time, origin, details`` (JSON: the combined
    score, each detector's and the sensor values). A fired rule's score is the lowest
    score of its declared severity under the alert ``cuts``, so its alert has that
    severity.
    """
    accepted = scored.where(F.col("reason").isNull())
    details = F.to_json(F.struct("score", "scores", "values", "topic", "partition", "offset"))
    anomalies = accepted.where("anomaly").select(
        F.col("asset").alias("entity"),
        F.lit(SCORE_RULE).alias("rule"),
        "score",
        "event_time",
        "origin",
        details.alias("details"),
    )
    rule_scores = F.create_map(
        *(
            x
            for r in config.rules
            for x in (F.lit(r.name), F.lit(score_of_severity(r.severity, cuts)))
        )
    ).cast("map<string,double>")
    fired = accepted.where(F.size("rules") > 0).select(
        F.col("asset").alias("entity"),
        F.explode("rules").alias("rule"),
        "event_time",
        "origin",
        details.alias("details"),
    )
    fired = fired.select(
        "entity",
        "rule",
        rule_scores[F.col("rule")].alias("score"),
        "event_time",
        "origin",
        "details",
    )
    return anomalies.unionByName(fired)


def write_outputs(settings: Settings, config: DetectorSetConfig) -> Any:
    """The ``foreachBatch`` sink: bronze and quarantine appends, then the alert lifecycle.

    Detections go through :class:`spark.alerts.Lifecycle`: the alerts table, the outbox
    for people and the alerts topic.
    """
    from spark.alerts import Lifecycle

    i = settings.infra
    lifecycle = Lifecycle(settings, i.alerts_table, "infra")
    appender = BatchAppender()

    def sink(batch: DataFrame, batch_id: int) -> None:
        batch.persist()
        try:
            app = stream_app_id(batch.sparkSession, i.query_name)
            appender.append(
                bronze_rows(batch),
                settings.table_path(i.bronze_table),
                f"{app}.bronze",
                batch_id,
                "event_date",
            )
            appender.append(
                quarantine_rows(batch),
                settings.table_path(i.quarantine_table),
                f"{app}.quarantine",
                batch_id,
                None,
            )
            found = detections(batch, config, settings.alerts.severity_cuts)
            changed = lifecycle.record(found, batch_id, i.query_name)
            log.info("batch %d: %d alerts changed", batch_id, len(changed))
        finally:
            batch.unpersist()

    return sink


def ensure_tables(spark: SparkSession, settings: Settings) -> None:
    """Create the bronze and quarantine tables empty if they do not exist."""
    i = settings.infra
    empty = spark.createDataFrame([], SCORED)
    for table, frame, partition in (
        (i.bronze_table, bronze_rows(empty), "event_date"),
        (i.quarantine_table, quarantine_rows(empty), None),
    ):
        create_if_missing(frame, settings.table_path(table), partition)


def start(spark: SparkSession, settings: Settings, topic: str | None = None) -> StreamingQuery:
    """Start the infra speed layer on ``topic`` (the configured one by default)."""
    from spark.ingest import kafka_stream

    i = settings.infra
    config = load_config(settings)
    ensure_tables(spark, settings)
    raw = kafka_stream(spark, settings, topic or i.topic, i.max_offsets_per_trigger)
    return (
        score_stream(kafka_records(raw), settings, config)
        .writeStream.queryName(i.query_name)
        .option("checkpointLocation", settings.checkpoint_path(i.query_name))
        .trigger(processingTime=f"{int(i.trigger_seconds * 1000)} milliseconds")
        .foreachBatch(write_outputs(settings, config))
        .start()
    )


def backfill_scores(bronze: DataFrame, settings: Settings, config: DetectorSetConfig) -> DataFrame:
    """Re-score stored readings per asset from an empty state with the same step.

    Readings are taken in the order the stream took them (partition, offset); the result
    has the bronze columns with fresh ``score``, ``scores``, ``anomaly`` and ``rules`` and
    ``origin = 'backfill'``. Run over the same readings as the stream, it reproduces the
    stream's scores exactly.
    """
    sensors = settings.infra.sensors
    out_schema = StructType(
        [
            SCORED[name]
            for name in (
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
        ]
    )

    def per_asset(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(["partition", "offset"], kind="stable")
        state = AssetState.fresh(config)
        readings = [
            Reading(a, pd.Timestamp(t).value / 1e9, list(v), "backfill")
            for a, t, v in zip(frame["asset"], frame["event_time"], frame["values"], strict=True)
        ]
        rows = []
        for (r, scored), p, o in zip(
            score_readings(state, readings, sensors),
            frame["partition"],
            frame["offset"],
            strict=True,
        ):
            rows.append(
                {
                    "asset": r.asset,
                    "event_time": pd.Timestamp(r.t, unit="s"),
                    "partition": p,
                    "offset": o,
                    "score": scored.get("score"),
                    "scores": scored.get("scores"),
                    "anomaly": scored.get("anomaly"),
                    "rules": scored.get("rules"),
                    "origin": "backfill",
                }
            )
        return pd.DataFrame.from_records(rows, columns=out_schema.fieldNames())

    return (
        bronze.select("asset", "event_time", "values", "partition", "offset")
        .groupBy("asset")
        .applyInPandas(per_asset, schema=out_schema)
    )


assert tuple(SCORED.fieldNames()) == COLUMNS, "the stream's schema is the step's columns"
