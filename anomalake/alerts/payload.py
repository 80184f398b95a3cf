"""The one alert payload on the alerts topic: versioned, with a JSON Schema in ``docs/``.

Every use case (markets, infra, hosts) publishes the same shape: the alert's
row of the lifecycle table as people see it, plus what changed (``event``) and whether
people were told (``notify``). Times are
ISO 8601 in UTC. ``v`` is :data:`ALERT_PAYLOAD_VERSION`; a change of shape is a new
version, and ``docs/alert-payload.schema.json`` is the contract consumers validate against.
Consumers deduplicate on the key (``alert_id``) and ``updated_at``: delivery is at least
once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from anomalake.settings import PROJECT_ROOT

#: Version 1 was the markets stream's one message per fired bar, before its lifecycle.
ALERT_PAYLOAD_VERSION = 2
SCHEMA_PATH = PROJECT_ROOT / "docs" / "alert-payload.schema.json"
#: The fields of a payload, in order (``v`` first).
FIELDS = (
    "alert_id",
    "use_case",
    "entity",
    "rule",
    "severity",
    "max_score",
    "status",
    "origin",
    "detections",
    "first_event_time",
    "last_event_time",
    "opened_at",
    "updated_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
    "note",
    "details",
    "event",
    "notify",
)


def jsonable(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The alert with dates and times as ISO 8601 text, ready for ``json.dumps``."""
    return {
        key: value.isoformat() if isinstance(value, datetime | date) else value
        for key, value in alert.items()
    }


def payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of a changed alert (a lifecycle row with ``event`` and ``notify``)."""
    return {"v": ALERT_PAYLOAD_VERSION, **jsonable({k: alert.get(k) for k in FIELDS})}


def encode(alert: Mapping[str, Any]) -> bytes:
    """:func:`payload` as compact JSON bytes."""
    return json.dumps(payload(alert), separators=(",", ":"), default=str).encode()


def schema() -> dict[str, Any]:
    """The payload's JSON Schema (``docs/alert-payload.schema.json``)."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return loaded
