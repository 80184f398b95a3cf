"""Explicit schemas of the events on our topics (never inferred)."""

from __future__ import annotations

from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from anomalake.speed.records import KAFKA_COLUMNS

_KAFKA_TYPES = {
    "key": StringType(),
    "topic": StringType(),
    "partition": IntegerType(),
    "offset": LongType(),
    "kafka_timestamp": TimestampType(),
}
#: Where a record came from: its key and Kafka coordinates, kept on every output row (the
#: names are the core's :data:`anomalake.speed.records.KAFKA_COLUMNS`).
KAFKA_RECORD_FIELDS = [StructField(name, _KAFKA_TYPES[name]) for name in KAFKA_COLUMNS]

MARKET_BAR = StructType(
    [
        StructField("v", IntegerType()),
        StructField("symbol", StringType()),
        StructField("timestamp", StringType()),
        StructField("open", DoubleType()),
        StructField("high", DoubleType()),
        StructField("low", DoubleType()),
        StructField("close", DoubleType()),
        StructField("volume", LongType()),
    ]
)
