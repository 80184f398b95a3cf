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

pytestmark = pytest.mark.integration


def _new_topic(settings: Settings, partitions: int = 2) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bars-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka.client_config())
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[
        topic
    ].result()
    return topic


def _isolated(settings: Settings, name: str, **markets: Any) -> Settings:
    return settings.with_markets_query(name, flush_after_seconds=2.0, **markets)


def _tables(spark, s: Settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    m = s.markets
    return {
        k: spark.read.format("delta").load(s.table_path(t))
        for k, t in (
            ("bronze", m.bronze_table),
            ("quarantine", m.quarantine_table),
            ("fired", m.fired_table),
        )
    }


def _landed(spark, s: Settings) -> int:  # type: ignore[no-untyped-def]
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, s.table_path(s.markets.quarantine_table)):
        return 0
    t = _tables(spark, s)
    return int(t["bronze"].count() + t["quarantine"].count())


def _stream_anomalies(spark, s: Settings) -> set[tuple[str, int, str]]:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    alerts = _tables(spark, s)["fired"].select(
        "symbol",
        (F.unix_timestamp("event_time") / 60).cast("long").alias("minute"),
        F.array_join("rules", ",").alias("rules"),
    )
    return {(r["symbol"], r["minute"], r["rules"]) for r in alerts.collect()}


def _alerts_caught_up(spark, s: Settings) -> bool:  # type: ignore[no-untyped-def]
    """Whether every fired rule is folded into the alerts (each batch's paths all ended)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    path = s.table_path(s.markets.alerts_table)
    if not DeltaTable.isDeltaTable(spark, path):
        return False
    folded = spark.read.format("delta").load(path).agg(F.sum("detections")).first()[0]
    fired = _tables(spark, s)["fired"].select(F.explode("rules")).count()
    return bool(folded == fired)


def _reference(path: Path) -> set[tuple[str, int, str]]:
    ref = reference_anomalies(path)
    return {(r.symbol, r.minute, r.rules) for r in ref.itertuples()}


def test_stream_anomalies_equal_an_independent_pandas_computation(
    kafka: Settings,
    spark,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from spark.streams.markets import start

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
    alerts_topic = _new_topic(s, partitions=1)
    s = s.model_copy(update={"kafka": s.kafka.model_copy(update={"alerts_topic": alerts_topic})})
    topic = _new_topic(s)
    report = produce(s.kafka, topic, replay_messages(data))
    assert report.failed == 0
    query = start(spark, s, topic)
    try:
        deadline = time.monotonic() + 300
        while _landed(spark, s) < report.delivered and time.monotonic() < deadline:
            assert query.exception() is None, query.exception()
            time.sleep(2)
        # the alerts path runs beside bronze's: let the batch that landed the last bars end
        while not _alerts_caught_up(spark, s) and time.monotonic() < deadline:
            assert query.exception() is None, query.exception()
            time.sleep(2)
        state = query.lastProgress["stateOperators"][0]
    finally:
        query.stop()
    # the state has one partition per local core; the session's setting is left as it was
    assert state["numShufflePartitions"] == s.markets_state_partitions == 2
    assert spark.conf.get("spark.sql.shuffle.partitions") == str(s.spark.shuffle_partitions)
    t = _tables(spark, s)
    from pyspark.sql import functions as F

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
    assert t["fired"].select("fired_id").distinct().count() == t["fired"].count()
    a1 = t["fired"].where("array_contains(rules, 'A1')").first()
    assert a1["prev_close"] > 0 and a1["close_change"] > 0.005 and a1["detected_at"] is not None
    # the fired rules are detections of the lifecycle: one alert per symbol and rule,
    # every detection folded in, and each alert published with the one payload (v 2)
    alerts = spark.read.format("delta").load(s.table_path(s.markets.alerts_table)).collect()
    fired_rules = t["fired"].select("symbol", F.explode("rules").alias("rule"))
    per_key = {
        (r["symbol"], r["rule"]): r["count"]
        for r in fired_rules.groupBy("symbol", "rule").count().collect()
    }
    assert {(a["entity"], a["rule"]): a["detections"] for a in alerts} == per_key
    assert {a["severity"] for a in alerts if a["rule"] == "A1"} == {"high"}
    published = _consume_all(s, alerts_topic)
    assert set(published) == {a["alert_id"] for a in alerts}
    import jsonschema

    from anomalake.alerts.payload import schema

    for message in published.values():
        jsonschema.validate(message, schema())


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
    topic = _new_topic(s)
    env = {
        **os.environ,
        "ANOMALAKE_MARKETS__BRONZE_TABLE": s.markets.bronze_table,
        "ANOMALAKE_MARKETS__QUARANTINE_TABLE": s.markets.quarantine_table,
        "ANOMALAKE_MARKETS__ALERTS_TABLE": s.markets.alerts_table,
        "ANOMALAKE_MARKETS__FIRED_TABLE": s.markets.fired_table,
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
    run_to_completion(
        args,
        env,
        log,
        lambda: _landed(spark, s) >= report.delivered and _alerts_caught_up(spark, s),
    )
    t = _tables(spark, s)
    from pyspark.sql import functions as F

    coords = (
        t["bronze"]
        .select("topic", "partition", "offset")
        .unionByName(t["quarantine"].select("topic", "partition", "offset"))
    )
    assert coords.count() == report.delivered, json.dumps(kills)
    assert coords.distinct().count() == report.delivered
    assert t["fired"].count() == t["fired"].select("fired_id").distinct().count()
    assert _stream_anomalies(spark, s) == _reference(data)
    # every fired rule folded into the alerts exactly once across the kills (the run ended
    # when they matched; had a replayed batch been folded twice, they would not have)
    alerts = spark.read.format("delta").load(s.table_path(s.markets.alerts_table))
    fired_rules = t["fired"].select(F.explode("rules")).count()
    assert alerts.agg(F.sum("detections")).first()[0] == fired_rules
    assert alerts.count() == alerts.select("entity", "rule").distinct().count()
