"""The alerts table through delta-rs: idempotent batches, people's acknowledge/resolve."""

from __future__ import annotations

import json
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from anomalake.alerts.store import (
    BATCH_KEY,
    AlertStore,
    CurrentAlerts,
    apply_detections,
    is_conflict,
    plan_changes,
    retry_conflicts,
    to_micros,
)
from anomalake.errors import AnomalakeError

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
SUPPRESS = 300.0
CUTS = (0.9, 0.99, 0.999)
Det = tuple[str, str, float, int, str]  # entity, rule, score, seconds after T0, origin


def _groups(rows: list[Det]) -> list[dict[str, Any]]:
    """One group per detection (what the Spark aggregation gives for single rows)."""
    return [
        {"entity": e, "rule": r, "origin": o, "count": 1, "score": s, "details": json.dumps(t)}
        | {"first_us": to_micros(T0 + timedelta(seconds=t))}
        | {"last_us": to_micros(T0 + timedelta(seconds=t))}
        for e, r, s, t, o in rows
    ]


def _record(
    store: AlertStore,
    batch_id: int,
    rows: list[Det],
    now: datetime = NOW,
    current: CurrentAlerts | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    changed = apply_detections(
        store,
        use_case="infra",
        groups=_groups(rows),
        tag=f"test_query:{batch_id}",
        suppress_seconds=SUPPRESS,
        cuts=CUTS,
        now=now,
        current=current,
        **kwargs,
    )
    return {a["entity"]: a for a in changed}


def _snapshot(store: AlertStore) -> tuple[int, list[dict[str, Any]]]:
    return store.version(), sorted(store.rows(), key=lambda r: r["alert_id"])


def test_a_replayed_batch_changes_nothing_and_severity_escalates_once(tmp_path: Path) -> None:
    store = AlertStore(str(tmp_path / "alerts"))
    current = CurrentAlerts()
    first = [
        ("pump-1", "t2", 0.95, 0, "live"),
        ("pump-1", "t2", 0.96, 20, "live"),
        ("pump-2", "t2", 0.5, 5, "live"),
    ]
    out = _record(store, 0, first, current=current)
    assert set(out) == {"pump-1", "pump-2"}
    p1 = out["pump-1"]
    assert p1["notify"] and p1["event"] == "opened" and p1["status"] == "open"
    assert p1["detections"] == 2 and p1["severity"] == "medium" and p1["max_score"] == 0.96
    assert p1["first_event_time"] == T0 and p1["last_event_time"] == T0 + timedelta(seconds=20)
    assert p1["opened_at"] == NOW and p1["last_batch"] == "test_query:0"
    assert json.loads(p1["details"]) == 0 and len(p1["alert_id"]) == 32
    assert out["pump-2"]["severity"] == "low" and out["pump-2"]["notify"]

    before = _snapshot(store)
    # the stream's own commit is known as its own: no read on the next batch
    assert current.rows is not None and current.version == before[0]
    later = NOW + timedelta(minutes=1)
    assert _record(store, 0, first, later, current) == {}  # same run
    assert _record(store, 0, first, later, CurrentAlerts()) == {}  # restarted
    assert _snapshot(store) == before  # no commit, no doubled counts

    out = _record(
        store,
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
    assert out["pump-1"]["detections"] == 4 and out["pump-1"]["severity"] == "critical"
    assert out["pump-3"]["notify"] is False and out["pump-3"]["origin"] == "replay"
    assert "pump-2" not in out  # untouched alerts are not rewritten
    # each stream commit names its batch (the benchmark's latency reads it)
    assert [tag for tag, _ in store.stream_commits()] == ["test_query:0", "test_query:1"]


def test_people_acknowledge_and_resolve_and_the_stream_never_undoes_it(tmp_path: Path) -> None:
    store = AlertStore(str(tmp_path / "alerts"))
    current = CurrentAlerts()
    opening = [("valve-1", "rule-a", 0.95, 0, "live")]
    (opened,) = _record(store, 0, opening, current=current).values()
    alert_id = opened["alert_id"]

    acked = store.acknowledge(alert_id, "ann", "t", now=NOW + timedelta(seconds=10))
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "ann"
    assert acked["acknowledged_at"] == NOW + timedelta(seconds=10)
    with pytest.raises(AnomalakeError, match="already acknowledged"):
        store.acknowledge(alert_id, "ann", "t")

    # Someone resolves the alert after the stream read it and before its commit: the
    # stream's commit conflicts, it reads again and folds into the resolved alert.
    resolved_at = NOW + timedelta(seconds=20)
    resolved: list[dict[str, Any]] = []
    attempts: list[list[dict[str, Any]]] = []

    def meanwhile(changes: list[dict[str, Any]]) -> None:
        attempts.append(changes)
        if not resolved:
            resolved.append(store.resolve(alert_id, "bob", "t", note="new seal", now=resolved_at))

    (out,) = _record(
        store,
        1,
        [("valve-1", "rule-a", 0.999, 60, "live")],
        NOW + timedelta(seconds=30),
        current,
        before_commit=meanwhile,
    ).values()
    assert len(attempts) == 2 and attempts[0][0]["status"] == "acknowledged"
    assert (out["status"], out["detections"], out["notify"]) == ("resolved", 2, False)
    (row,) = store.list()
    assert (row["status"], row["resolved_by"], row["note"]) == ("resolved", "bob", "new seal")
    assert row["acknowledged_by"] == "ann" and row["detections"] == 2  # both writes kept
    assert row["severity"] == "critical" and row["resolved_at"] == to_micros(resolved_at)

    with pytest.raises(AnomalakeError, match="already resolved"):
        store.resolve(alert_id, "bob", "t")
    with pytest.raises(AnomalakeError, match="no alert 'nope'"):
        store.acknowledge("nope", "ann", "t")
    with pytest.raises(AnomalakeError, match="no alert"):
        store.acknowledge("x' OR '1'='1", "ann", "t")  # quoted, not injected


def test_suppression_after_resolve_then_a_new_alert_and_listing(tmp_path: Path) -> None:
    store = AlertStore(str(tmp_path / "alerts"))
    suppress = timedelta(seconds=SUPPRESS)
    current = CurrentAlerts()  # the stream's, warm across people's resolve
    opening = [("valve-2", "rule-a", 0.95, 0, "live")]
    (opened,) = _record(store, 0, opening, current=current).values()
    alert_id = opened["alert_id"]
    resolved_at = NOW + timedelta(minutes=1)
    store.resolve(alert_id, "bob", "t", now=resolved_at)

    inside = resolved_at + suppress - timedelta(seconds=1)
    out = _record(store, 1, [("valve-2", "rule-a", 0.9999, 90, "live")], inside, current)
    assert out["valve-2"]["alert_id"] == alert_id and out["valve-2"]["status"] == "resolved"
    assert out["valve-2"]["detections"] == 2 and not out["valve-2"]["notify"]

    after = resolved_at + suppress + timedelta(seconds=1)
    out = _record(store, 2, [("valve-2", "rule-a", 0.95, 95, "live")], after, current)
    fresh = out["valve-2"]
    assert fresh["alert_id"] != alert_id and fresh["notify"] and fresh["status"] == "open"
    assert fresh["detections"] == 1 and fresh["event"] == "opened"

    assert [r["alert_id"] for r in store.list(status="open")] == [fresh["alert_id"]]
    assert [r["alert_id"] for r in store.list()] == [fresh["alert_id"], alert_id]
    assert [r["alert_id"] for r in store.list(limit=1)] == [fresh["alert_id"]]
    with pytest.raises(AnomalakeError, match="unknown status"):
        store.list(status="closed")
    assert AlertStore(str(tmp_path / "never_written")).list() == []


def _acknowledge_all(path: str, ids: list[str], by: str) -> None:
    store = AlertStore(path)
    for alert_id in ids:
        store.acknowledge(alert_id, by, "t")
        time.sleep(0.1)  # a person's pace, so that the stream commits in between


def test_a_person_in_another_process_and_the_stream_never_lose_an_update(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """People acknowledge 20 alerts from another process while the stream folds batches."""
    caplog.set_level("INFO", logger="anomalake.alerts.store")
    store = AlertStore(str(tmp_path / "alerts"))
    entities = [f"e{i:02d}" for i in range(20)]
    opened = _record(store, 0, [(e, "r", 0.95, 0, "live") for e in entities])
    ids = [opened[e]["alert_id"] for e in entities]
    person = multiprocessing.get_context("spawn").Process(
        target=_acknowledge_all, args=(store.path, ids, "ann")
    )
    person.start()
    current = CurrentAlerts()
    batch = 0
    while person.is_alive() and batch < 2000:
        batch += 1
        _record(store, batch, [(e, "r", 0.95, batch, "live") for e in entities], current=current)
        time.sleep(0.2)  # a micro-batch's pace (a tight loop starves the person's retries)
    person.join(120)
    assert person.exitcode == 0
    rows = store.rows()
    assert len(rows) == 20
    assert {r["status"] for r in rows} == {"acknowledged"}
    assert {r["acknowledged_by"] for r in rows} == {"ann"}
    assert {r["detections"] for r in rows} == {batch + 1}
    # the two writers did race: the stream committed between two acks, or its commit
    # found the table changed under it and was run again
    history = reversed(store._table().history())
    order = ["stream" if BATCH_KEY in c else "person" for c in history if c["version"] > 0]
    people = [i for i, who in enumerate(order) if who == "person"]
    assert len(people) == 20
    retried = sum("Delta conflict" in r.getMessage() for r in caplog.records)
    assert retried or "stream" in order[people[0] : people[-1]]


def test_retry_conflicts_retries_only_delta_conflicts() -> None:
    from deltalake.exceptions import CommitFailedError

    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise CommitFailedError("a concurrent transaction added new data")
        return "done"

    assert retry_conflicts(flaky, "test") == "done" and len(calls) == 3
    assert not is_conflict(RuntimeError("disk full"))
    with pytest.raises(AnomalakeError, match="changed under it 2 times"):
        retry_conflicts(lambda: (_ for _ in ()).throw(CommitFailedError("again")), "t", 2)


def test_plan_changes_one_alert_per_entity_and_rule_across_origins_in_a_batch() -> None:
    groups = [
        {"entity": "p", "rule": "r", "origin": o, "count": 2, "first_us": t, "last_us": t + 5}
        | {"score": s, "details": o}
        for o, t, s in (("replay", 0, 0.9999), ("live", 10, 0.95))
    ]
    (row,) = plan_changes(
        [], groups, use_case="infra", suppress_seconds=60, cuts=CUTS, now_us=99, tag="q:7"
    )
    assert row["detections"] == 4 and row["severity"] == "critical" and row["details"] == "replay"
    assert row["notify"] and row["event"] == "opened" and row["origin"] == "live"
    assert (row["first_event_time"], row["last_event_time"], row["last_batch"]) == (0, 15, "q:7")
