from __future__ import annotations

import pytest

from anomalake.alerts.lifecycle import AlertBook, severity_from_score


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
