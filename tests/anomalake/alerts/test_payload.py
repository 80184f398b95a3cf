"""The alert payload: what the lifecycle produces is valid against the published schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from anomalake.alerts.payload import ALERT_PAYLOAD_VERSION, encode, schema
from anomalake.alerts.store import plan_changes, public

NOW_US = 1_767_607_200_000_000  # 2026-01-05 10:00 UTC


def _changes() -> list[dict]:  # type: ignore[type-arg]
    groups = [
        {
            "entity": "pump-1",
            "rule": "overheating",
            "score": 0.999,
            "first_us": NOW_US - 5_000_000,
            "last_us": NOW_US,
            "count": 3,
            "origin": "live",
            "details": '{"Temperature": 95}',
        }
    ]
    rows = plan_changes(
        [],
        groups,
        use_case="infra",
        suppress_seconds=60,
        cuts=(0.9, 0.99, 0.999),
        now_us=NOW_US,
        tag="q:1",
    )
    return [public(r) for r in rows]


def test_a_changed_alert_is_a_valid_payload_of_the_current_version() -> None:
    (alert,) = _changes()
    message = json.loads(encode(alert))
    jsonschema.validate(message, schema())
    assert message["v"] == ALERT_PAYLOAD_VERSION == schema()["properties"]["v"]["const"]
    assert list(message) == list(schema()["properties"])
    assert message["event"] == "opened" and message["notify"] is True
    assert message["opened_at"] == "2026-01-05T10:00:00+00:00"


def test_the_schema_refuses_what_is_not_an_alert() -> None:
    (alert,) = _changes()
    message = json.loads(encode(alert))
    for broken in (
        {**message, "v": 1},
        {**message, "severity": "urgent"},
        {k: v for k, v in message.items() if k != "entity"},
        {**message, "symbol": "ABC"},  # the old per-bar shape's fields are not allowed
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema())
