from __future__ import annotations

import json

from spark.streams.markets import decode_and_validate

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
    return [r.asDict() for r in decode_and_validate(raw, max_bytes).orderBy("offset").collect()]


def _with(**changes: object) -> bytes:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


def test_a_good_bar_is_typed_and_has_no_reason(spark) -> None:  # type: ignore[no-untyped-def]
    (row,) = _validate(spark, [_with()])
    assert row["reason"] is None and row["raw_value"] is None
    assert (row["symbol"], row["open"], row["close"], row["volume"]) == ("ABC", 10.0, 10.25, 1200)
    assert row["minute"] == (1767584700 // 60)  # 2026-01-05 03:45 UTC
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
        _with(close="NaN"): "NaN price in close",
        _with(low=0): "non-positive price in low: 0",
        _with(open=-3.5): "non-positive price in open",
        _with(volume=-5): "negative volume: -5",
        _with(symbol="X" * 5000): "oversized payload",
    }
    rows = _validate(spark, list(cases))
    assert len(rows) == len(cases)
    for row, (value, expected) in zip(rows, cases.items(), strict=True):
        assert row["reason"] is not None and expected in row["reason"], (value, row["reason"])
        assert row["raw_value"] == value.decode()


def test_several_problems_are_all_reported(spark) -> None:  # type: ignore[no-untyped-def]
    (row,) = _validate(spark, [_with(close="NaN", volume=-1, high=...)])
    assert "NaN price in close" in row["reason"]
    assert "negative volume" in row["reason"]
    assert "missing field high" in row["reason"]
