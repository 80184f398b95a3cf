"""Kafka -> Delta landing: the source at the job's edge, the parsing as a transform."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from anomalake.settings import Settings
from spark.tables import BATCH_ID, BATCH_TIME, batch_time

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery
    from pyspark.sql.types import StructType

KAFKA_METADATA = ["topic", "partition", "offset"]


def kafka_stream(
    spark: SparkSession, settings: Settings, topic: str, max_offsets_per_trigger: int | None = None
) -> DataFrame:
    """A streaming DataFrame over ``topic``, from ``kafka.starting_offsets`` on a new checkpoint.

    (A query restarted from its checkpoint resumes where it stopped, whatever this says.)
    """
    reader = spark.readStream.format("kafka").options(**settings.kafka.spark_options())
    reader = reader.option("subscribe", topic)
    reader = reader.option("startingOffsets", settings.kafka.starting_offsets)
    reader = reader.option("failOnDataLoss", "true")
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def parse_json_events(raw: DataFrame, schema: StructType) -> DataFrame:
    """Kafka rows -> the schema's columns plus key, topic, partition, offset, kafka_timestamp.

    A value that is not a JSON object of ``schema`` yields nulls in its fields; callers
    validate and quarantine such rows.
    """
    parsed = raw.select(
        F.col("key").cast("string").alias("key"),
        F.from_json(F.col("value").cast("string"), schema).alias("event"),
        *KAFKA_METADATA,
        F.col("timestamp").alias("kafka_timestamp"),
    )
    return parsed.select("event.*", "key", *KAFKA_METADATA, "kafka_timestamp")


def land_to_delta(
    events: DataFrame, settings: Settings, table: str, query_name: str, available_now: bool = True
) -> StreamingQuery:
    """Append a parsed stream to the Delta table ``table`` (exactly once via the checkpoint)."""
    writer = (
        events.writeStream.format("delta")
        .queryName(query_name)
        .outputMode("append")
        .option("checkpointLocation", settings.checkpoint_path(query_name))
    )
    writer = (
        writer.trigger(availableNow=True)
        if available_now
        else writer.trigger(processingTime="1 second")
    )
    return writer.start(settings.table_path(table))


def bronze_rows(scored: DataFrame, event_time: str = "event_time") -> DataFrame:
    """A speed layer's accepted rows (no ``reason``) with their event date and ingestion time.

    ``ingested_at`` is the micro-batch's time when ``scored`` carries it (the time the sink
    started the batch, :func:`spark.tables.with_batch_columns`, whose columns are dropped
    here), else the time the rows are written.
    """
    landed = {"event_date": F.to_date(event_time), "ingested_at": batch_time(scored)}
    dropped = ("reason", "raw_value", BATCH_ID, BATCH_TIME)  # (absent ones are ignored)
    return scored.where(F.col("reason").isNull()).withColumns(landed).drop(*dropped)
