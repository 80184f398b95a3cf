"""No record can stop the infra step: poison records and random input (hypothesis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomalake.settings import SKAB_SENSORS, get_settings
from anomalake.speed.infra import guarded_records, load_config, score_messages

START = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)


def _reading(at: datetime, asset: str = "p1", **changes: object) -> bytes:
    doc: dict[str, object] = {"v": 1, "asset": asset, "timestamp": at.isoformat()}
    doc.update({s: 1.0 + (hash((s, at)) % 100) / 1000 for s in SKAB_SENSORS})
    doc.update(changes)
    return json.dumps(doc).encode()


POISON: list[tuple[bytes, str]] = [
    (_reading(START, Current=float("inf")), "non-finite Current"),
    (_reading(START, Current=float("nan")), "non-finite Current"),
    (_reading(START, Current=1e308), "Current out of range"),
    (_reading(START, Current=2**70), "Current out of range"),
    (
        _reading(START).replace(b'"Current": 1', b'"Current": ' + b"9" * 400 + b', "x": 1'),
        "out of range",
    ),
    (_reading(START.replace(year=1)), "event time out of range"),
    (_reading(START.replace(year=9999)), "event time out of range"),
    (b'{"v": 1, "asset": "p1", "asset": "p2"}', "duplicate field asset"),
    (
        b'{"v": 1, "asset": "p1", "timestamp": "2026-03-09T10:00:00", "Current": "\xff\xfe"}',
        "invalid UTF-8",
    ),
    (_reading(START, asset=""), "missing field asset"),
    (_reading(START, asset="   "), "is not an entity id"),
    (_reading(START, asset={"a": 1}), "missing field asset"),
    (_reading(START, Current=[1, 2]), "bad type for Current"),
    (_reading(START, Current={"a": 1}), "bad type for Current"),
    (b"x" * 10_000_000, "oversized payload"),
    (b"[" * 3000, "malformed JSON"),
    (b"", "malformed JSON"),
]


@pytest.mark.parametrize(("message", "reason"), POISON, ids=[r for _, r in POISON])
def test_each_poison_record_is_quarantined_with_its_reason(message: bytes, reason: str) -> None:
    s = get_settings()
    key = "p1"
    out = score_messages([(key, message)], s, load_config(s))
    assert len(out) == 1 and reason in out.loc[0, "reason"]


def test_poison_between_good_records_leaves_the_good_ones_scored_as_without_it() -> None:
    s = get_settings()
    config = load_config(s)
    good = [("p1", _reading(START + timedelta(seconds=i))) for i in range(400)]
    mixed = list(good)
    for n, (message, _) in enumerate(POISON[:-3]):
        mixed.insert(20 * n + 5, ("p1", message))
    clean = score_messages(good, s, config)
    dirty = score_messages(mixed, s, config)
    assert len(dirty) == len(mixed)
    accepted = dirty[dirty["reason"].isna()].reset_index(drop=True)
    pd.testing.assert_series_equal(accepted["score"], clean["score"])
    assert accepted["scores"].tolist() == clean["scores"].tolist()


def test_a_reading_dated_2100_does_not_stop_the_readings_after_it() -> None:
    """Its Kafka timestamp is now: 2100 is more than a day after it, so it is refused."""
    s = get_settings()
    config = load_config(s)
    now = pd.Timestamp(START)
    rows = [(_reading(START.replace(year=2100)), now)]
    rows += [(_reading(START + timedelta(seconds=i)), now) for i in range(3600)]
    records = pd.DataFrame(
        {
            "raw_value": [m.decode() for m, _ in rows],
            "key": "p1",
            "topic": "t",
            "partition": 0,
            "offset": range(len(rows)),
            "kafka_timestamp": [t for _, t in rows],
        }
    )
    i = s.infra
    state, out = guarded_records(None, config, records, i.sensors, i.max_payload_bytes, i.limits)
    assert out.loc[0, "reason"].startswith("event time in the future")
    assert out["reason"].iloc[1:].isna().all() and state is not None and state.readings == 3600


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
readings = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 1, 2, "1"]),
        "asset": st.sampled_from(["p1", "p2", "", " ", "p1\x00"]) | json_values,
        "timestamp": st.datetimes().map(lambda d: d.isoformat()) | json_values,
        **{
            name: st.floats(allow_nan=True, allow_infinity=True) | json_values
            for name in SKAB_SENSORS
        },
        "origin": st.sampled_from(["live", "replay", "x"]),
    },
)
messages = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", None]),
        st.binary(max_size=200) | readings.map(lambda d: json.dumps(d).encode()),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_random_bytes_and_json_never_raise_and_every_record_comes_out_once(
    batch: list[tuple[str | None, bytes]],
) -> None:
    s = get_settings()
    out = score_messages(batch, s, load_config(s))
    assert len(out) == len(batch)
    assert sorted(out["offset"]) == list(range(len(batch)))
    accepted = out["reason"].isna()
    assert out.loc[accepted, "score"].between(0, 1).all()
