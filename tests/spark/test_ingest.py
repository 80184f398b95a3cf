from __future__ import annotations

import json

import pytest

from anomalake.producer import encode, produce
from anomalake.settings import Settings
from spark.ingest import kafka_stream, land_to_delta, parse_json_events
from spark.schemas import MARKET_BAR

BAR = {
    "symbol": "ABC",
    "timestamp": "2026-01-05T09:15:00+05:30",
    "open": 10.0,
    "high": 11.0,
    "low": 9.5,
    "close": 10.5,
    "volume": 1200,
}


def _kafka_rows(spark, values: list[bytes]):  # type: ignore[no-untyped-def]
    rows = [(b"ABC", v, "t", 0, i, None) for i, v in enumerate(values)]
    schema = (
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    return spark.createDataFrame(rows, schema)


def test_parse_json_events_types_fields_and_keeps_kafka_coordinates(spark) -> None:  # type: ignore[no-untyped-def]
    out = parse_json_events(_kafka_rows(spark, [encode(BAR)]), MARKET_BAR).collect()
    assert len(out) == 1
    row = out[0].asDict()
    assert row["v"] == 1 and row["symbol"] == "ABC" and row["volume"] == 1200
    assert row["close"] == 10.5 and row["key"] == "ABC"
    assert (row["topic"], row["partition"], row["offset"]) == ("t", 0, 0)


def test_parse_json_events_turns_garbage_into_nulls_not_errors(spark) -> None:  # type: ignore[no-untyped-def]
    values = [b"not json", json.dumps({**BAR, "volume": "lots"}).encode(), encode(BAR)]
    out = parse_json_events(_kafka_rows(spark, values), MARKET_BAR).orderBy("offset").collect()
    assert len(out) == 3
    assert out[0]["symbol"] is None
    assert out[1]["volume"] is None
    assert out[2]["volume"] == 1200


@pytest.mark.integration
def test_kafka_to_delta_holds_exactly_the_produced_records(kafka: Settings, spark) -> None:  # type: ignore[no-untyped-def]
    from tests.spark.topics import new_topic

    settings = kafka
    topic = new_topic(settings)
    n = 500
    records = [
        (f"SYM{i % 7}", encode({**BAR, "symbol": f"SYM{i % 7}", "volume": i})) for i in range(n)
    ]
    report = produce(settings.kafka, topic, records)
    assert (report.delivered, report.failed) == (n, 0)

    events = parse_json_events(kafka_stream(spark, settings, topic), MARKET_BAR)
    land_to_delta(events, settings, f"it_{topic}", f"it_{topic}").awaitTermination(180)
    table = spark.read.format("delta").load(settings.table_path(f"it_{topic}"))
    assert table.count() == n
    assert sorted(r["volume"] for r in table.select("volume").collect()) == list(range(n))
    assert table.select("partition").distinct().count() == 2
    assert table.where("key != symbol").count() == 0  # keyed by symbol

    # Restarting from the checkpoint adds nothing; new records are added exactly once.
    land_to_delta(events, settings, f"it_{topic}", f"it_{topic}").awaitTermination(180)
    assert spark.read.format("delta").load(settings.table_path(f"it_{topic}")).count() == n
    produce(settings.kafka, topic, records[:10])
    land_to_delta(events, settings, f"it_{topic}", f"it_{topic}").awaitTermination(180)
    assert spark.read.format("delta").load(settings.table_path(f"it_{topic}")).count() == n + 10
