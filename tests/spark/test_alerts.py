"""The alert lifecycle in Delta: idempotent batches, people's acknowledge/resolve, the topic."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from anomalake.errors import AnomalakeError
from anomalake.settings import Settings
from spark.alerts import (
    DETECTIONS,
    CurrentAlerts,
    acknowledge,
    apply_detections,
    collect_groups,
    is_conflict,
    list_alerts,
    plan_changes,
    publish_alerts,
    resolve,
    retry_conflicts,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
Det = tuple[str, str, float, int, str]  # entity, rule, score, seconds after T0, origin


def _detections(spark: Any, rows: list[Det]) -> Any:
    return spark.createDataFrame(
        [(e, r, s, T0 + timedelta(seconds=t), o, json.dumps({"at": t})) for e, r, s, t, o in rows],
        DETECTIONS,
    )


def _table() -> str:
    return f"alerts_test_{uuid.uuid4().hex[:8]}"


def _record(
    spark: Any,
    settings: Settings,
    table: str,
    batch_id: int,
    rows: list[Det],
    now: datetime = NOW,
    current: CurrentAlerts | None = None,
) -> dict[str, dict[str, Any]]:
    """Apply a batch; ``current`` kept between calls is a stream's warm cache."""
    changed = apply_detections(
        spark,
        settings,
        table=table,
        use_case="infra",
        groups=collect_groups(_detections(spark, rows)),
        batch_id=batch_id,
        query="test_query",
        now=now,
        current=current,
    )
    return {a["entity"]: a for a in changed}


def _snapshot(spark: Any, settings: Settings, table: str) -> tuple[Any, list[Any]]:
    from delta.tables import DeltaTable

    path = settings.table_path(table)
    version = DeltaTable.forPath(spark, path).history(1).collect()[0]["version"]
    rows = spark.read.format("delta").load(path).orderBy("alert_id").collect()
    return version, rows


@pytest.mark.integration
def test_a_replayed_batch_changes_nothing_and_severity_escalates_once(
    spark: Any, settings: Settings
) -> None:
    table = _table()
    current = CurrentAlerts()
    first = [
        ("pump-1", "t2", 0.95, 0, "live"),
        ("pump-1", "t2", 0.95, 10, "live"),
        ("pump-1", "t2", 0.96, 20, "live"),
        ("pump-2", "t2", 0.5, 5, "live"),
    ]
    out = _record(spark, settings, table, 0, first, current=current)
    assert set(out) == {"pump-1", "pump-2"}
    p1 = out["pump-1"]
    assert p1["notify"] and p1["event"] == "opened" and p1["status"] == "open"
    assert p1["detections"] == 3 and p1["severity"] == "medium" and p1["max_score"] == 0.96
    assert p1["first_event_time"] == T0 and p1["last_event_time"] == T0 + timedelta(seconds=20)
    assert p1["opened_at"] == NOW and p1["last_batch"] == "test_query:0"
    assert json.loads(p1["details"]) == {"at": 0} and len(p1["alert_id"]) == 32
    assert out["pump-2"]["severity"] == "low" and out["pump-2"]["notify"]

    before = _snapshot(spark, settings, table)
    # the stream's own commit is known as its own: no read on the next batch
    assert current.rows is not None and current.version == before[0]
    later = NOW + timedelta(minutes=1)
    assert _record(spark, settings, table, 0, first, later, current) == {}  # same run
    assert _record(spark, settings, table, 0, first, later, CurrentAlerts()) == {}  # restarted
    assert _snapshot(spark, settings, table) == before  # no commit, no doubled counts

    out = _record(
        spark,
        settings,
        table,
        1,
        [
            ("pump-1", "t2", 0.9999, 30, "live"),
            ("pump-1", "t2", 0.95, 31, "live"),
            ("pump-3", "t2", 0.9999, 30, "replay"),
        ],
        current=current,
    )
    assert out["pump-1"]["alert_id"] == p1["alert_id"]
    assert out["pump-1"]["notify"] and out["pump-1"]["event"] == "escalated:critical"
    assert out["pump-1"]["detections"] == 5 and out["pump-1"]["severity"] == "critical"
    assert out["pump-3"]["notify"] is False and out["pump-3"]["origin"] == "replay"
    assert "pump-2" not in out  # untouched alerts are not rewritten


@pytest.mark.integration
def test_people_acknowledge_and_resolve_and_the_stream_never_undoes_it(
    spark: Any, settings: Settings
) -> None:
    table = _table()
    current = CurrentAlerts()
    (opened,) = _record(
        spark, settings, table, 0, [("valve-1", "rule-a", 0.95, 0, "live")], current=current
    ).values()
    alert_id = opened["alert_id"]

    acked = acknowledge(spark, settings, table, alert_id, "ann", now=NOW + timedelta(seconds=10))
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "ann"
    assert acked["acknowledged_at"] == NOW + timedelta(seconds=10)
    with pytest.raises(AnomalakeError, match="already acknowledged"):
        acknowledge(spark, settings, table, alert_id, "ann")

    # Someone resolves the alert after the stream read it and before its MERGE.
    resolved_at = NOW + timedelta(minutes=1)
    resolved: list[dict[str, Any]] = []
    out = apply_detections(
        spark,
        settings,
        table=table,
        use_case="infra",
        groups=collect_groups(_detections(spark, [("valve-1", "rule-a", 0.999, 60, "live")])),
        batch_id=1,
        query="test_query",
        now=NOW + timedelta(seconds=30),
        before_commit=lambda _: resolved.append(
            resolve(spark, settings, table, alert_id, "bob", note="new seal", now=resolved_at)
        ),
        current=current,
    )
    # Escalated while someone was on it: still news.
    assert out[0]["event"] == "escalated:critical" and out[0]["detections"] == 2
    assert resolved[0]["status"] == "resolved" and resolved[0]["acknowledged_by"] == "ann"
    (row,) = list_alerts(spark, settings, table).to_dict("records")
    assert (row["status"], row["resolved_by"], row["note"]) == ("resolved", "bob", "new seal")
    assert row["acknowledged_by"] == "ann" and row["detections"] == 2  # both writes kept
    assert row["severity"] == "critical" and row["resolved_at"] == resolved_at
    # the stream's cache noticed both people's commits: the next detection folds into
    # the resolved alert (within the suppression window) and tells nobody
    later = resolved_at + timedelta(seconds=5)
    (folded,) = _record(
        spark, settings, table, 2, [("valve-1", "rule-a", 0.999, 70, "live")], later, current
    ).values()
    assert (folded["alert_id"], folded["status"], folded["notify"]) == (alert_id, "resolved", False)

    with pytest.raises(AnomalakeError, match="already resolved"):
        resolve(spark, settings, table, alert_id, "bob")
    with pytest.raises(AnomalakeError, match="no alert 'nope'"):
        acknowledge(spark, settings, table, "nope", "ann")


@pytest.mark.integration
def test_suppression_after_resolve_then_a_new_alert_and_listing(
    spark: Any, settings: Settings
) -> None:
    table = _table()
    suppress = timedelta(seconds=settings.alerts.suppress_seconds)
    current = CurrentAlerts()  # the stream's, warm across people's resolve
    (opened,) = _record(
        spark, settings, table, 0, [("valve-2", "rule-a", 0.95, 0, "live")], current=current
    ).values()
    alert_id = opened["alert_id"]
    resolved_at = NOW + timedelta(minutes=1)
    resolve(spark, settings, table, alert_id, "bob", now=resolved_at)

    inside = resolved_at + suppress - timedelta(seconds=1)
    out = _record(
        spark, settings, table, 1, [("valve-2", "rule-a", 0.9999, 90, "live")], inside, current
    )
    assert out["valve-2"]["alert_id"] == alert_id and out["valve-2"]["status"] == "resolved"
    assert out["valve-2"]["detections"] == 2 and not out["valve-2"]["notify"]

    after = resolved_at + suppress + timedelta(seconds=1)
    out = _record(
        spark, settings, table, 2, [("valve-2", "rule-a", 0.95, 95, "live")], after, current
    )
    fresh = out["valve-2"]
    assert fresh["alert_id"] != alert_id and fresh["notify"] and fresh["status"] == "open"
    assert fresh["detections"] == 1 and fresh["event"] == "opened"

    opened_now = list_alerts(spark, settings, table, status="open")
    assert list(opened_now["alert_id"]) == [fresh["alert_id"]]
    assert list(list_alerts(spark, settings, table)["alert_id"]) == [fresh["alert_id"], alert_id]
    assert list(list_alerts(spark, settings, table, limit=1)["alert_id"]) == [fresh["alert_id"]]
    with pytest.raises(AnomalakeError, match="unknown status"):
        list_alerts(spark, settings, table, status="closed")
    assert list_alerts(spark, settings, "alerts_never_written").empty


def test_retry_conflicts_retries_only_delta_conflicts() -> None:
    from delta.exceptions import ConcurrentAppendException

    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConcurrentAppendException(message="files were added")
        return "done"

    assert retry_conflicts(flaky, "test") == "done" and len(calls) == 3
    assert is_conflict(RuntimeError("io.delta.exceptions.ConcurrentWriteException: x"))
    assert not is_conflict(RuntimeError("disk full"))
    with pytest.raises(AnomalakeError, match="changed under it 2 times"):
        retry_conflicts(
            lambda: (_ for _ in ()).throw(ConcurrentAppendException(message="again")), "t", 2
        )


def test_plan_changes_one_alert_per_entity_and_rule_across_origins_in_a_batch() -> None:
    groups = [
        {"entity": "p", "rule": "r", "origin": o, "count": 2, "first_us": t, "last_us": t + 5}
        | {"score": s, "details": o}
        for o, t, s in (("replay", 0, 0.9999), ("live", 10, 0.95))
    ]
    (row,) = plan_changes(
        [],
        groups,
        use_case="infra",
        suppress_seconds=60,
        cuts=(0.9, 0.99, 0.999),
        now_us=99,
        tag="q:7",
    )
    assert row["detections"] == 4 and row["severity"] == "critical" and row["details"] == "replay"
    assert row["notify"] and row["event"] == "opened" and row["origin"] == "live"
    assert (row["first_event_time"], row["last_event_time"], row["last_batch"]) == (0, 15, "q:7")


@pytest.mark.integration
def test_publish_alerts_to_the_alerts_topic(kafka: Settings) -> None:
    from confluent_kafka import Consumer, TopicPartition

    alerts: list[dict[str, Any]] = [
        {"alert_id": f"pub-{uuid.uuid4().hex[:6]}", "severity": "high", "opened_at": NOW}
        for _ in range(2)
    ]
    publish_alerts(kafka, alerts)
    consumer = Consumer(
        {**kafka.kafka.client_config(), "group.id": uuid.uuid4().hex, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(kafka.kafka.alerts_topic, 0, 0)])
    got: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 60  # other tests publish thousands to the same topic
    while not all(a["alert_id"] in got for a in alerts) and time.monotonic() < deadline:
        for message in consumer.consume(5000, 0.5):
            if message.error() is None:
                got[(message.key() or b"").decode()] = json.loads(message.value() or b"null")
    consumer.close()
    first = got[alerts[0]["alert_id"]]
    assert first["v"] == 2 and first["opened_at"] == "2026-01-05T10:00:00+00:00"
    assert all(a["alert_id"] in got for a in alerts)
