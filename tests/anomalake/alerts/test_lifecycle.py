from __future__ import annotations

from dataclasses import replace

import pytest

from anomalake.alerts.lifecycle import (
    AlertBook,
    Detection,
    fold,
    make_alert_id,
    severity_from_score,
)


def test_severity_from_score() -> None:
    assert [severity_from_score(s) for s in (0.5, 0.95, 0.995, 0.9999)] == [
        "low",
        "medium",
        "high",
        "critical",
    ]


def test_one_open_alert_per_entity_and_rule() -> None:
    book = AlertBook(suppress_seconds=60)
    first, notify = book.detect("pump-1", "overheating", 0.95, at=0)
    assert notify and first.count == 1
    again, notify = book.detect("pump-1", "overheating", 0.95, at=10)
    assert not notify and again.alert_id == first.alert_id and again.count == 2
    other, notify = book.detect("pump-2", "overheating", 0.95, at=10)
    assert notify and other.alert_id != first.alert_id


def test_escalation_notifies_again_and_keeps_the_highest_severity() -> None:
    book = AlertBook()
    book.detect("p", "r", 0.95, at=0)
    alert, notify = book.detect("p", "r", 0.9999, at=5)
    assert notify and alert.severity == "critical"
    alert, notify = book.detect("p", "r", 0.95, at=6)
    assert not notify and alert.severity == "critical"


def test_suppression_window_after_resolve() -> None:
    book = AlertBook(suppress_seconds=60)
    alert, _ = book.detect("p", "r", 0.95, at=0)
    assert book.acknowledge(alert.alert_id).status == "acknowledged"
    book.resolve(alert.alert_id, at=100)
    folded, notify = book.detect("p", "r", 0.95, at=130)  # within 60 s of resolving
    assert not notify and folded.alert_id == alert.alert_id and folded.status == "resolved"
    fresh, notify = book.detect("p", "r", 0.95, at=200)
    assert notify and fresh.alert_id != alert.alert_id and fresh.status == "open"


def test_replayed_detections_are_recorded_but_never_sent() -> None:
    book = AlertBook()
    alert, notify = book.detect("p", "r", 0.9999, at=0, replay=True)
    assert alert.replay and not notify


def test_unknown_alert_id() -> None:
    with pytest.raises(KeyError):
        AlertBook().acknowledge("nope")


def test_three_detections_make_one_open_alert_counted_three() -> None:
    book = AlertBook()
    events = [book.detect("pump-1", "overheating", 0.95, at=t) for t in (0, 5, 9)]
    assert [notify for _, notify in events] == [True, False, False]
    (alert,) = book.alerts.values()
    assert alert.status == "open" and alert.count == 3
    assert (alert.first_seen, alert.last_seen) == (0, 9)


def test_acknowledged_alert_keeps_folding_and_cannot_be_acknowledged_twice() -> None:
    book = AlertBook()
    alert, _ = book.detect("p", "r", 0.95, at=0)
    book.acknowledge(alert.alert_id)
    folded, notify = book.detect("p", "r", 0.95, at=1000)
    assert not notify and folded.alert_id == alert.alert_id
    assert folded.status == "acknowledged" and folded.count == 2
    with pytest.raises(ValueError, match="already|only open"):
        book.acknowledge(alert.alert_id)
    book.resolve(alert.alert_id, at=1001)
    with pytest.raises(ValueError):
        book.resolve(alert.alert_id, at=1002)


def test_fold_of_aggregated_detections_and_events() -> None:
    opened, event = fold(None, Detection("p", "r", 0.95, 10, 20, count=4), suppress=60)
    assert event == "opened" and (opened.count, opened.first_seen, opened.last_seen) == (4, 10, 20)
    assert opened.severity == "medium" and len(opened.alert_id) == 32
    again, event = fold(opened, Detection("p", "r", 0.999, 5, 30, count=2), suppress=60)
    assert event == "escalated:critical" and again.count == 6
    assert (again.first_seen, again.last_seen, again.max_score) == (5, 30, 0.999)
    same, event = fold(again, Detection("p", "r", 0.995, 40), suppress=60)
    assert event is None and same.severity == "critical"


def test_live_detection_on_an_alert_only_a_replay_saw_is_news() -> None:
    replayed, event = fold(None, Detection("p", "r", 0.95, 0, origin="backfill"), suppress=60)
    assert event is None and replayed.replay
    live, event = fold(replayed, Detection("p", "r", 0.95, 10), suppress=60)
    assert event == "opened" and live.alert_id == replayed.alert_id and not live.replay
    again, event = fold(live, Detection("p", "r", 0.9999, 11, origin="replay"), suppress=60)
    assert event is None and again.severity == "critical"  # recorded, not sent


def test_alert_id_is_deterministic_and_differs_after_a_resolved_twin() -> None:
    assert make_alert_id("infra", "p", "r", 1) == "7a8d8fd387b9492ccc1590c427f3a784"
    assert make_alert_id("infra", "p", "r", 1) != make_alert_id("markets", "p", "r", 1)
    first, _ = fold(None, Detection("p", "r", 0.95, 0), suppress=60)
    closed = replace(first, status="resolved", resolved_at=1)
    reopened, event = fold(closed, Detection("p", "r", 0.95, 0), suppress=60, now=500)
    assert event == "opened" and reopened.alert_id != first.alert_id


def test_a_severity_maps_to_a_score_that_maps_back_to_it() -> None:
    from anomalake.alerts.lifecycle import SEVERITIES, score_of_severity, severity_from_score

    for severity in SEVERITIES:
        assert severity_from_score(score_of_severity(severity)) == severity
    assert (
        severity_from_score(score_of_severity("high", (0.5, 0.6, 0.7)), (0.5, 0.6, 0.7)) == "high"
    )
