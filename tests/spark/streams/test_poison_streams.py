"""Poison records through the real broker into each running stream: nothing stops it.

Each poison record lands in quarantine once with its reason, the query stays active, and
the good records around it are scored. The record-level cases (and random input) are
tested without Spark in ``tests/anomalake/speed/test_poison.py``, ``test_validation.py``
and ``test_hosts_poison.py``; here the point is the whole path: Kafka bytes -> Spark
-> Arrow -> the Python step -> Delta.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from anomalake.producer import produce
from anomalake.settings import SKAB_SENSORS, Settings
from tests.spark.topics import isolated_infra, new_topic

pytestmark = pytest.mark.integration


OPEN = datetime(2026, 2, 2, 9, 15, tzinfo=timezone(timedelta(hours=5, minutes=30)))


def _bar(minute: int, **changes: object) -> bytes:
    doc: dict[str, object] = {
        "v": 1,
        "symbol": "ABC",
        "timestamp": (OPEN + timedelta(minutes=minute)).isoformat(),
        "open": 100.0,
        "high": 101.0,
        "low": 99.0,
        "close": 100.0 + (minute % 3) / 10,
        "volume": 1000 + minute,
    }
    doc.update(changes)
    return json.dumps(doc).encode()


MARKET_POISON: dict[bytes, str] = {
    _bar(90, volume=2**63): "volume out of range",
    _bar(90, volume=int("9" * 400)): "bad type for volume",
    _bar(90, close=1e308): "close out of range",
    _bar(90, timestamp="0001-01-01T00:00:00Z"): "event time out of range",
    _bar(90, timestamp="9999-12-31T00:00:00Z"): "event time out of range",
    _bar(90, timestamp="2100-02-02T09:15:00+05:30"): "event time in the future",
    _bar(90, symbol=" "): "is not an entity id",
    _bar(90, symbol={"a": 1}): "is not an entity id",
    _bar(90, close=[1, 2]): "bad type for close",
    b'{"v": 1, "symbol": "ABC", "close": "\xff\xfe"}': "invalid UTF-8",
    b"[" * 3000: "malformed JSON",
    b'{"v": 1, "symbol": "ABC", "symbol": "XYZ"}': "duplicate field in the JSON object",
}


def _wait_landed(spark, s: Settings, tables: tuple[str, str], n: int, query: Any) -> None:  # type: ignore[no-untyped-def]
    from delta.tables import DeltaTable

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert query.isActive and query.exception() is None, query.exception()
        paths = [s.table_path(t) for t in tables]
        if all(DeltaTable.isDeltaTable(spark, p) for p in paths):
            landed = sum(spark.read.format("delta").load(p).count() for p in paths)
            if landed >= n:
                return
        time.sleep(2)
    raise AssertionError(f"fewer than {n} records landed in {tables} in time")


def _check_quarantine(rows: list[dict[str, Any]], poison: dict[bytes, str]) -> None:
    for raw, reason in poison.items():
        text = raw.decode(errors="replace")
        mine = [r for r in rows if r["raw_value"] == text]
        assert len(mine) == 1, (text[:80], len(mine))
        assert reason in mine[0]["reason"], (reason, mine[0]["reason"])


def test_poison_between_bars_leaves_the_markets_stream_running(kafka: Settings, spark) -> None:  # type: ignore[no-untyped-def]
    from spark.streams.speed import start

    name = f"poison_markets_{uuid.uuid4().hex[:6]}"
    s = kafka.with_markets_query(name, flush_after_seconds=1.0)
    topic = new_topic(s, name)
    good = [_bar(m) for m in range(60)]
    # poison in the middle of the bars, in its own micro-batches and mixed in one
    first = [("ABC", v) for v in good[:30]] + [("ABC", v) for v in MARKET_POISON]
    query = start(spark, s, "markets", topic=topic)
    try:
        assert produce(s.kafka, topic, first).failed == 0
        m = s.markets
        _wait_landed(spark, s, (m.bronze_table, m.quarantine_table), len(first), query)
        assert produce(s.kafka, topic, [("ABC", v) for v in good[30:]]).failed == 0
        total = len(good) + len(MARKET_POISON)
        _wait_landed(spark, s, (m.bronze_table, m.quarantine_table), total, query)
        time.sleep(3)  # the idle symbol's pending bars are flushed
        assert query.isActive
    finally:
        query.stop()
    bronze = spark.read.format("delta").load(s.table_path(m.bronze_table))
    quarantine = spark.read.format("delta").load(s.table_path(m.quarantine_table))
    reasons = [r["reason"][:60] for r in quarantine.collect()]
    assert bronze.count() == len(good) and quarantine.count() == len(MARKET_POISON), reasons
    _check_quarantine([r.asDict() for r in quarantine.collect()], MARKET_POISON)
    # every bar was scored, those after the poison too: A2 has its ten minutes of history
    scored = bronze.orderBy("minute").collect()
    assert [r["minute"] - scored[0]["minute"] for r in scored] == list(range(len(good)))
    assert all(r["a2"] is not None for r in scored[10:])


def _reading(second: int, **changes: object) -> bytes:
    doc: dict[str, object] = {
        "v": 1,
        "asset": "p1",
        "timestamp": f"2026-03-09T10:{second // 60:02d}:{second % 60:02d}",
    }
    doc.update({name: 1.0 + second % 7 / 100 for name in SKAB_SENSORS})
    doc.update(changes)
    return json.dumps(doc).encode()


INFRA_POISON: dict[bytes, str] = {
    _reading(900, Current=2**70): "Current out of range",
    _reading(900, Current=1e200): "Current out of range",
    b'{"v": 1, "asset": "p1", "Current": ' + b"9" * 400 + b"}": "Current out of range",
    _reading(900, timestamp="0001-01-01T00:00:00"): "event time out of range",
    _reading(900, timestamp="9999-12-31T00:00:00"): "event time out of range",
    _reading(900, timestamp="2100-03-09T10:00:00"): "event time in the future",
    b'{"v": 1, "asset": "p1", "asset": "p1"}': "duplicate field asset",
    b'{"v": 1, "asset": "p1", "Current": "\xff\xfe"}': "invalid UTF-8",
    _reading(900, asset=" "): "is not an entity id",
    _reading(900, Current={"a": 1}): "bad type for Current",
    b"[" * 3000: "malformed JSON",
}


def test_poison_between_readings_leaves_the_infra_stream_running(  # type: ignore[no-untyped-def]
    kafka: Settings, spark, tmp_path: Path
) -> None:
    from anomalake.speed.infra import load_config, score_messages
    from spark.streams.speed import start

    s = isolated_infra(kafka, tmp_path, webhook="", prefix="poison_infra")
    topic, infra = s.infra.topic, s.infra
    good = [_reading(t) for t in range(600)]
    messages = [("p1", v) for v in good[:300]] + [("p1", v) for v in INFRA_POISON]
    messages += [("p1", v) for v in good[300:]]
    query = start(spark, s, "infra")
    try:
        assert produce(s.kafka, topic, messages).failed == 0
        _wait_landed(spark, s, (infra.bronze_table, infra.quarantine_table), len(messages), query)
        assert query.isActive
    finally:
        query.stop()
    bronze = spark.read.format("delta").load(s.table_path(infra.bronze_table))
    quarantine = spark.read.format("delta").load(s.table_path(infra.quarantine_table))
    assert bronze.count() == len(good) and quarantine.count() == len(INFRA_POISON)
    _check_quarantine([r.asDict() for r in quarantine.collect()], INFRA_POISON)
    # the readings after the poison scored exactly as an offline run without the poison
    offline = score_messages([("p1", v) for v in good], s, load_config(s))
    streamed = bronze.orderBy("event_time").select("score").toPandas()["score"].tolist()
    assert streamed == offline.sort_values("event_time")["score"].tolist()
