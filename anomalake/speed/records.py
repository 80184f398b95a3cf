"""What every use case's records share, engine-free: where a record came from, its JSON."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from anomalake.usecases.spec import RecordLimits

#: Where a record says it comes from: a live feed, or a replay of stored data (whose
#: alerts are recorded but never sent to people).
ORIGINS = ("live", "replay")
#: A record's key and Kafka coordinates, kept on every output row (bronze, quarantine).
KAFKA_COLUMNS = ("key", "topic", "partition", "offset", "kafka_timestamp")


class _DuplicateKey(ValueError):
    """A JSON object names a field twice: which value is meant is not known."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for k, v in pairs:
        if k in doc:
            raise _DuplicateKey(k)
        doc[k] = v
    return doc


Doc = dict[str, Any]


def json_object(raw: str | None, max_payload_bytes: int) -> tuple[Doc | None, str | None]:
    """A Kafka value as a JSON object, or None and the reason it is not one.

    Reasons: an empty value, invalid UTF-8 (U+FFFD from the engine's decode), a payload
    over ``max_payload_bytes``, malformed JSON (too deep too), a field named twice, a
    value that is not an object.
    """
    if raw is None:
        return None, "empty value"
    if "\ufffd" in raw:
        return None, "invalid UTF-8"
    size = len(raw.encode())
    if size > max_payload_bytes:
        return None, f"oversized payload: {size} bytes > {max_payload_bytes}"
    try:
        doc = json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        return None, f"duplicate field {str(exc)[:40]}"
    except (ValueError, RecursionError):
        return None, "malformed JSON"
    if not isinstance(doc, dict):
        return None, "malformed JSON: not an object"
    return doc, None


def epoch_seconds(moment: Any) -> float | None:
    """A Kafka timestamp (pandas, datetime or None) in Unix seconds."""
    if moment is None or moment is pd.NaT:
        return None
    stamp = pd.Timestamp(moment)
    return (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).timestamp()


def envelope_problems(
    doc: Doc, entity: str, key: str | None, schema_version: int, limits: RecordLimits
) -> list[str]:
    """What is wrong with a record's schema version, its entity id (and key) and origin."""
    problems = []
    if doc.get("v") != schema_version:
        problems.append(f"unsupported schema version: {str(doc.get('v', 'none'))[:20]}")
    value = doc.get(entity)
    if not isinstance(value, str) or not value:
        problems.append(f"missing field {entity}")
    elif not re.match(limits.entity_pattern, value):
        problems.append(f"{entity} {value[:40]!r} is not an entity id")
    elif key is not None and value != key:
        problems.append(f"{entity} {value[:40]!r} differs from the record key {key[:40]!r}")
    origin = doc.get("origin", "live")
    if origin not in ORIGINS:
        problems.append(f"unknown origin: {str(origin)[:20]!r}")
    return problems


def event_time_problems(
    seconds: float, shown: Any, limits: RecordLimits, kafka_time: float | None
) -> list[str]:
    """An event time (Unix ``seconds``, written ``shown``) out of the limits, or in the future."""
    earliest, latest = limits.event_time_bounds()
    if not earliest <= seconds <= latest:
        return [f"event time out of range: {shown!r}"]
    if kafka_time is not None and seconds > kafka_time + limits.max_future_seconds:
        return [
            f"event time in the future: {shown!r} is more than "
            f"{limits.max_future_seconds:g} s after the record's Kafka timestamp"
        ]
    return []
