"""Explicit schemas of the events on our topics (never inferred)."""

from __future__ import annotations

from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

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
