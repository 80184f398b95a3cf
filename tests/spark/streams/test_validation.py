from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from anomalake.settings import load_settings
from spark.streams.speed import decode_and_validate

MARKETS = load_settings().markets

GOOD = {
    "v": 1,
    "symbol": "ABC",
    "timestamp": "2026-01-05 09:15:00+05:30",
    "open": 10,
    "high": 11.5,
    "low": 9.5,
    "close": 10.25,
    "volume": 1200,
}


def _validate(spark, values: list[bytes], max_bytes: int = 4096) -> list[dict]:  # type: ignore[no-untyped-def]
    rows = [(b"ABC", v, "t", 0, i, None) for i, v in enumerate(values)]
    schema = (
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    raw = spark.createDataFrame(rows, schema)
    spec = MARKETS.model_copy(update={"max_payload_bytes": max_bytes})
    return [r.asDict() for r in decode_and_validate(raw, spec).orderBy("offset").collect()]


def _with(**changes: object) -> bytes:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


def test_a_good_bar_is_typed_and_has_no_reason(spark) -> None:  # type: ignore[no-untyped-def]
    (row,) = _validate(spark, [_with()])
    assert row["reason"] is None and row["raw_value"] is None
    assert (row["symbol"], row["open"], row["close"], row["volume"]) == ("ABC", 10.0, 10.25, 1200)
    assert row["event_time"].isoformat() == "2026-01-05T03:45:00"  # UTC, naive
    assert row["schema_version"] == 1


def test_every_kind_of_bad_record_gets_its_reason(spark) -> None:  # type: ignore[no-untyped-def]
    cases = {
        b"not json at all": "malformed JSON",
        b"[1, 2, 3]": "malformed JSON",
        _with(v=2): "unsupported schema version: 2",
        _with(v=...): "unsupported schema version: none",
        _with(close=...): "missing field close",
        _with(symbol=...): "missing field symbol",
        _with(close="n/a"): "bad type for close: 'n/a'",
        _with(volume="lots"): "bad type for volume: 'lots'",
        _with(volume=12.5): "bad type for volume",
        _with(timestamp="2026-13-45 99:99:00"): "unparsable timestamp",
        _with(close="NaN"): "NaN in close",
        _with(low=0): "low must be > 0: 0",
        _with(open=-3.5): "open must be > 0: -3.5",
        _with(volume=-5): "volume must be >= 0: -5",
        _with(symbol="X" * 5000): "oversized payload",
        b'{"v": 1, "symbol": "ABC", "symbol": "XYZ"}': "duplicate field in the JSON object",
    }
    rows = _validate(spark, list(cases))
    assert len(rows) == len(cases)
    for row, (value, expected) in zip(rows, cases.items(), strict=True):
        assert row["reason"] is not None and expected in row["reason"], (value, row["reason"])
        assert row["raw_value"] == value.decode()


def test_several_problems_are_all_reported(spark) -> None:  # type: ignore[no-untyped-def]
    (row,) = _validate(spark, [_with(close="NaN", volume=-1, high=...)])
    assert "NaN in close" in row["reason"]
    assert "volume must be >= 0" in row["reason"]
    assert "missing field high" in row["reason"]


NOW = "2026-01-05 04:00:00"


def _through_the_step(spark, values: list[bytes]) -> list[dict]:  # type: ignore[no-untyped-def]
    """Validation and the per-symbol step (the stream's, from an empty state, flushed)."""
    from anomalake.detection.markets import MarketRuleParams
    from anomalake.speed.markets import MarketsStep
    from spark.streams.speed import score_batch

    rows = [(b"ABC", v, "t", 0, i, NOW) for i, v in enumerate(values)]
    schema = "key binary, value binary, topic string, partition int, offset long, ts string"
    raw = spark.createDataFrame(rows, schema).withColumn("timestamp", F.to_timestamp("ts"))
    step = MarketsStep(MarketRuleParams(), flush_after_ms=0, ttl_ms=0)
    scored = score_batch(decode_and_validate(raw.drop("ts"), MARKETS), step)
    return [r.asDict() for r in scored.orderBy("offset").collect()]


def test_poison_records_are_quarantined_and_the_bars_around_them_scored(spark) -> None:  # type: ignore[no-untyped-def]
    poison = {
        _with(volume=2**63): "volume out of range",
        _with(volume=int("9" * 400)): "bad type for volume",
        _with(close=1e308): "close out of range",
        b'{"v": 1, "symbol": "ABC", "close": Infinity}': "bad type for close",
        _with(close="Infinity"): "close out of range",
        _with(volume="1e400"): "bad type for volume",
        _with(timestamp="0001-01-01T00:00:00Z"): "event time out of range",
        _with(timestamp="9999-12-31T00:00:00Z"): "event time out of range",
        _with(timestamp="2100-01-05T09:15:00+05:30"): "event time in the future",
        _with(timestamp=1767584700000): "unparsable timestamp",
        _with(symbol=""): "is not an entity id",
        _with(symbol="  "): "is not an entity id",
        _with(symbol={"a": 1}): "is not an entity id",
        _with(close=[1, 2]): "bad type for close",
        b'{"v": 1, "symbol": "ABC", "close": "\xff\xfe"}': "invalid UTF-8",
    }
    good = [
        _with(timestamp=f"2026-01-05 09:{15 + m:02d}:00+05:30", close=10 + m / 100, volume=1000)
        for m in range(20)
    ]
    values = good[:10] + list(poison) + good[10:]
    rows = _through_the_step(spark, values)
    assert sorted(r["offset"] for r in rows) == list(range(len(values)))
    by_offset = {r["offset"]: r for r in rows}
    for n, reason in enumerate(poison.values()):
        got = by_offset[10 + n]["reason"]
        assert got is not None and reason in got, (reason, got)
    scored = [r for r in rows if r["reason"] is None]
    assert len(scored) == 20 and all(r["a2"] is not None for r in scored[10:])


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.binary(max_size=120)
        | st.dictionaries(
            st.sampled_from(["v", "symbol", "timestamp", "open", "high", "low", "close", "volume"]),
            st.none()
            | st.integers()
            | st.integers(min_value=2**63, max_value=10**60)
            | st.floats()
            | st.text(max_size=12)
            | st.lists(st.integers(), max_size=2),
        ).map(lambda d: json.dumps(d).encode()),
        min_size=1,
        max_size=40,
    )
)
def test_random_records_never_stop_validation_and_the_step(spark, values: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    rows = _through_the_step(spark, values)
    assert sorted(r["offset"] for r in rows) == list(range(len(values)))
