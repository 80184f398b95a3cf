"""The markets speed layer on a real broker and Spark: correctness and exactly-once."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from anomalake.generators.markets import FaultRates, write_market_files
from anomalake.producer import produce
from anomalake.replay import replay_messages
from anomalake.settings import Settings
from tests.spark.streams.crash import kill_repeatedly, run_to_completion
from tests.spark.streams.reference import reference_anomalies
from tests.spark.topics import new_topic

pytestmark = pytest.mark.integration


def _isolated(settings: Settings, name: str, **markets: Any) -> Settings:
    return settings.with_markets_query(name, flush_after_seconds=2.0, **markets)


def _tables(spark, s: Settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    m = s.markets
    return {
        k: spark.read.format("delta").load(s.table_path(t))
        for k, t in (
            ("bronze", m.bronze_table),
            ("quarantine", m.quarantine_table),
            ("alerts", m.alerts_table),
        )
    }


def _landed(spark, s: Settings) -> int:  # type: ignore[no-untyped-def]
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, s.table_path(s.markets.quarantine_table)):
        return 0
    t = _tables(spark, s)
    return int(t["bronze"].count() + t["quarantine"].count())


def _stream_anomalies(spark, s: Settings) -> set[tuple[str, int, str]]:  # type: ignore[no-untyped-def]
    """The bars the stream fired A1 or A2 on (their flags in bronze)."""
    from pyspark.sql import functions as F

    fired = (
        _tables(spark, s)["bronze"]
        .where(F.col("a1") | F.col("a2"))
        .select(
            "symbol",
            (F.unix_timestamp("event_time") / 60).cast("long").alias("minute"),
            F.concat_ws(
                ",", F.when(F.col("a1"), F.lit("A1")), F.when(F.col("a2"), F.lit("A2"))
            ).alias("rules"),
        )
    )
    return {(r["symbol"], r["minute"], r["rules"]) for r in fired.collect()}


def _episodes(anomalies: set[tuple[str, int, str]]) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (symbol, rule): the bars it fired on and the first one's minute.

    Nobody resolves alerts in these tests, so the lifecycle keeps one alert per symbol and
    rule that fired, counting every bar.
    """
    episodes: dict[tuple[str, str], tuple[int, int]] = {}
    for symbol, minute, rules in anomalies:
        for rule in rules.split(","):
            count, first = episodes.get((symbol, rule), (0, minute))
            episodes[(symbol, rule)] = (count + 1, min(first, minute))
    return episodes


def _alerts(t: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int]]:
    from pyspark.sql import functions as F

    rows = t["alerts"].select(
        "entity",
        "rule",
        "detections",
        (F.unix_timestamp("first_event_time") / 60).cast("long").alias("first"),
    )
    return {(r["entity"], r["rule"]): (r["detections"], r["first"]) for r in rows.collect()}


def _reference(path: Path) -> set[tuple[str, int, str]]:
    ref = reference_anomalies(path)
    return {(r.symbol, r.minute, r.rules) for r in ref.itertuples()}


def test_stream_anomalies_equal_an_independent_pandas_computation(
    kafka: Settings,
    spark,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from spark.streams.speed import start

    data = tmp_path / "bars"
    write_market_files(
        data,
        4,
        date(2026, 2, 2),
        2,
        seed=11,
        faults=FaultRates(0.01, 0.01, 0.01, 0.01, max_disorder=3),
    )
    s = _isolated(kafka, f"corr_{uuid.uuid4().hex[:6]}", max_offsets_per_trigger=1500)
    alerts_topic = new_topic(s, partitions=1)
    s = s.model_copy(update={"kafka": s.kafka.model_copy(update={"alerts_topic": alerts_topic})})
    topic = new_topic(s)
    report = produce(s.kafka, topic, replay_messages(data))
    assert report.failed == 0
    query = start(spark, s, "markets", topic=topic)
    try:
        deadline = time.monotonic() + 300
        while _landed(spark, s) < report.delivered and time.monotonic() < deadline:
            assert query.exception() is None, query.exception()
            time.sleep(2)
        state = query.lastProgress["stateOperators"][0]
    finally:
        query.stop()
    # the state has one partition per local core; the session's setting is left as it was
    assert state["numShufflePartitions"] == s.markets_state_partitions == 2
    assert spark.conf.get("spark.sql.shuffle.partitions") == str(s.spark.shuffle_partitions)
    t = _tables(spark, s)
    assert t["bronze"].count() + t["quarantine"].count() == report.delivered
    coords = t["bronze"].select("topic", "partition", "offset")
    everything = coords.unionByName(t["quarantine"].select("topic", "partition", "offset"))
    assert everything.distinct().count() == report.delivered  # each record exactly once
    reasons = {r["reason"].split(":")[0].split(" ")[0] for r in t["quarantine"].collect()}
    assert {"duplicate", "bad", "negative", "non-positive"} & reasons
    assert not any(r.startswith("late") for r in reasons)  # disorder is within the lateness
    expected = _reference(data)
    got = _stream_anomalies(spark, s)
    assert len(expected) > 50
    assert got == expected, (sorted(got - expected)[:5], sorted(expected - got)[:5])
    # the fired bars became alerts with the one lifecycle: one per symbol and rule (nobody
    # resolved any), counting every bar it fired on, far fewer than the bars
    assert _alerts(t) == _episodes(expected)
    assert t["alerts"].count() < len(expected) / 5
    a1 = t["alerts"].where("rule = 'A1'").orderBy("alert_id").first()
    assert abs(json.loads(a1["details"])["close_change"]) > 0.005 and a1["status"] == "open"
    # every alert was published, keyed by its id, as the lifecycle's payload (v2)
    published = _consume_all(s, alerts_topic)
    table = {r["alert_id"]: r for r in t["alerts"].collect()}
    assert set(published) == set(table)
    sample = published[a1["alert_id"]]
    assert sample["v"] == 2 and sample["use_case"] == "markets"
    assert (sample["entity"], sample["rule"]) == (a1["entity"], "A1")


def _consume_all(s: Settings, topic: str) -> dict[str, dict[str, Any]]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**s.kafka.client_config(), "group.id": uuid.uuid4().hex, "enable.auto.commit": False}
    )
    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: dict[str, dict[str, Any]] = {}
    seen, deadline = 0, time.monotonic() + 60
    while seen < high and time.monotonic() < deadline:
        for message in consumer.consume(5000, 0.5):
            if message.error() is None:
                seen += 1
                got[(message.key() or b"").decode()] = json.loads(message.value() or b"null")
    consumer.close()
    return got


def test_kill_9_and_restart_neither_loses_nor_duplicates(
    kafka: Settings,
    spark,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    data = tmp_path / "bars"
    write_market_files(data, 4, date(2026, 3, 2), 2, seed=5, faults=FaultRates())
    name = f"crash_{uuid.uuid4().hex[:6]}"
    s = _isolated(kafka, name, max_offsets_per_trigger=500)
    topic = new_topic(s)
    env = {
        **os.environ,
        "ANOMALAKE_MARKETS__BRONZE_TABLE": s.markets.bronze_table,
        "ANOMALAKE_MARKETS__QUARANTINE_TABLE": s.markets.quarantine_table,
        "ANOMALAKE_MARKETS__ALERTS_TABLE": s.markets.alerts_table,
        "ANOMALAKE_MARKETS__QUERY_NAME": name,
        "ANOMALAKE_MARKETS__FLUSH_AFTER_SECONDS": "2",
        "ANOMALAKE_MARKETS__MAX_OFFSETS_PER_TRIGGER": "500",
        "ANOMALAKE_SPARK__DRIVER_MEMORY": "1g",
    }
    report = produce(s.kafka, topic, replay_messages(data))
    assert report.failed == 0
    log = tmp_path / "stream.log"
    args = ["stream", "markets", "--topic", topic]
    checkpoint = Path(s.checkpoint_path(name))
    kills = kill_repeatedly(args, env, checkpoint, log, kills=3, seed=20261125)
    run_to_completion(args, env, log, lambda: _landed(spark, s) >= report.delivered)
    t = _tables(spark, s)
    coords = (
        t["bronze"]
        .select("topic", "partition", "offset")
        .unionByName(t["quarantine"].select("topic", "partition", "offset"))
    )
    assert coords.count() == report.delivered, json.dumps(kills)
    assert coords.distinct().count() == report.delivered
    expected = _reference(data)
    assert _stream_anomalies(spark, s) == expected
    # each batch was folded into the alerts exactly once across the kills
    assert _alerts(t) == _episodes(expected)
