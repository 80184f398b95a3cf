"""The alert lifecycle of a Spark stream: detections aggregated per batch, the alerts topic.

The alerts table itself (idempotent batches, people's acknowledge and resolve) is tested
with :mod:`anomalake.alerts.store` in ``tests/anomalake/alerts/test_store.py``.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from anomalake.alerts.store import to_micros
from anomalake.settings import Settings
from spark.alerts import DETECTIONS, collect_groups, publish_alerts

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.mark.integration
def test_detections_are_aggregated_per_entity_rule_and_origin(spark: Any) -> None:
    def at(seconds: int) -> datetime:
        return T0 + timedelta(seconds=seconds)

    rows = [
        ("pump-1", "t2", 0.95, at(20), "live", json.dumps({"at": 20})),
        ("pump-1", "t2", 0.97, at(5), "live", json.dumps({"at": 5})),
        ("pump-1", "t2", math.nan, at(9), None, "{}"),  # no origin: live; NaN score: 0
        ("pump-1", "t2", 0.99, at(1), "replay", "{}"),
        ("pump-1", "t3", None, at(2), "live", "{}"),
        (None, "t2", 0.9, at(0), "live", "{}"),  # no entity: dropped
        ("pump-2", None, 0.9, at(0), "live", "{}"),  # no rule: dropped
        ("pump-2", "t2", 0.9, None, "live", "{}"),  # no time: dropped
    ]
    groups = collect_groups(spark.createDataFrame(rows, DETECTIONS))
    by_key = {(g["entity"], g["rule"], g["origin"]): g for g in groups}
    assert set(by_key) == {
        ("pump-1", "t2", "live"),
        ("pump-1", "t2", "replay"),
        ("pump-1", "t3", "live"),
    }
    live = by_key[("pump-1", "t2", "live")]
    assert live["count"] == 3 and live["score"] == 0.97
    assert (live["first_us"], live["last_us"]) == (to_micros(at(5)), to_micros(at(20)))
    assert json.loads(live["details"]) == {"at": 5}  # the first detection's
    assert by_key[("pump-1", "t2", "replay")]["count"] == 1
    assert by_key[("pump-1", "t3", "live")]["score"] == 0.0


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
