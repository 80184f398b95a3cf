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

#: Where a record came from: its key and Kafka coordinates, kept on every output row.
KAFKA_RECORD_FIELDS = [
    StructField("key", StringType()),
    StructField("topic", StringType()),
    StructField("partition", IntegerType()),
    StructField("offset", LongType()),
    StructField("kafka_timestamp", TimestampType()),
]

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
