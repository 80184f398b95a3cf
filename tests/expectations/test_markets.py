from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from expectations.markets import (
    BRONZE_SUITE,
    PROFILE_SUITE,
    SILVER_SUITE,
    batch_profile,
    bronze_suite,
    end_of_trade_date,
    profile_suite,
    silver_suite,
)
from expectations.runner import QualityGateFailed, QualityResult, enforce, validate

DAY = dt.date(2026, 4, 6)
OPEN = dt.datetime(2026, 4, 6, 3, 45, tzinfo=dt.UTC)  # 09:15 in Kolkata
SILVER = (
    "symbol string, event_time timestamp, minute long, open double, high double, low double, "
    "close double, volume long, trade_date date, partition int, offset long"
)
BRONZE = (
    "symbol string, event_time timestamp, minute long, open double, high double, low double, "
    "close double, volume long, schema_version int, key string, topic string, partition int, "
    "offset long, kafka_timestamp timestamp, ingested_at timestamp"
)


def _bar(symbol: str, i: int, **changes: Any) -> dict[str, Any]:
    t = OPEN + dt.timedelta(minutes=i)
    bar = {
        "symbol": symbol,
        "event_time": t,
        "minute": int(t.timestamp()) // 60,
        "open": 100.0 + i,
        "high": 101.5 + i,
        "low": 99.5 + i,
        "close": 100.5 + i,
        "volume": 1000 + i,
        "trade_date": DAY,
        "partition": 0,
        "offset": i,
    }
    bar.update(changes)
    return bar


def _clean() -> list[dict[str, Any]]:
    return [_bar(s, i) for s in ("RELIANCE", "M_M-1.NS") for i in range(4)]


def _silver(spark, bars: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    columns = [c.split()[0] for c in SILVER.split(", ")]
    return spark.createDataFrame([tuple(b[c] for c in columns) for b in bars], SILVER)


def _run(spark, tmp_path: Path, bars: list[dict[str, Any]], label: str) -> QualityResult:  # type: ignore[no-untyped-def]
    return validate(
        _silver(spark, bars),
        silver_suite(),
        name="silver_markets",
        context_dir=tmp_path / "gx",
        run_label=label,
    )


def test_every_expectation_has_a_gx_severity() -> None:
    for suite in (bronze_suite(), silver_suite(), profile_suite()):
        severities = {e.severity.value for e in suite.expectations}
        assert severities == {"critical", "warning"}, suite.name
    unique = [e for e in silver_suite().expectations if e.expectation_type.endswith("be_unique")]
    assert [(e.column_list, e.severity.value) for e in unique] == [
        (["symbol", "minute"], "critical")
    ]


def test_clean_silver_passes_and_writes_static_data_docs(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = enforce(_run(spark, tmp_path, _clean(), "2026-04-06"))
    assert result.success and result.success_critical
    assert result.failed_critical == () and result.failed_warning == ()
    assert result.statistics["unsuccessful_expectations"] == 0
    assert result.data_docs_index == (tmp_path / "gx" / "data_docs" / "index.html").resolve()
    assert result.data_docs_index.is_file()
    assert SILVER_SUITE in result.data_docs_index.read_text()
    assert result.validation_page is not None and result.validation_page.is_file()
    assert result.validation_page.is_relative_to(result.data_docs_index.parent)

    # Re-running the same date re-opens the project from disk and reuses what is registered.
    again = _run(spark, tmp_path, _clean(), "2026-04-06")
    assert again.success and again.validation_page != result.validation_page


def test_clean_bronze_with_kafka_columns_passes(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime(2026, 4, 6, 12, tzinfo=dt.UTC)
    rows = [
        (b["symbol"], b["event_time"], b["minute"], b["open"], b["high"], b["low"], b["close"])
        + (b["volume"], 1, b["symbol"], "markets.bars", 0, b["offset"], now, now)
        for b in _clean()
    ]
    result = validate(
        spark.createDataFrame(rows, BRONZE),
        bronze_suite(),
        name="bronze_markets",
        context_dir=tmp_path / "gx",
        run_label="2026-04-06",
    )
    assert result.success, result.failures
    assert BRONZE_SUITE in result.data_docs_index.read_text()


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("null close", "expect_column_values_to_not_be_null(close)"),
        ("negative volume", "expect_column_values_to_be_between(volume)"),
        ("duplicated minute", "expect_compound_columns_to_be_unique(symbol, minute)"),
    ],
)
def test_critical_violation_fails_the_gate_naming_the_expectation(
    spark,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    fault: str,
    expected: str,
) -> None:
    bars = _clean()
    if fault == "null close":
        bars[1]["close"] = None
    elif fault == "negative volume":
        bars[2]["volume"] = -5
    else:
        bars.append(_bar("RELIANCE", 3, offset=99))
    result = _run(spark, tmp_path, bars, fault.replace(" ", "-"))
    assert not result.success_critical
    assert result.failed_critical == (expected,)
    assert result.failed_warning == ()
    with pytest.raises(QualityGateFailed) as raised:
        enforce(result)
    assert expected in str(raised.value)
    assert str(result.validation_page) in str(raised.value)
    assert raised.value.result is result


def test_warning_only_violation_passes_the_gate_and_is_reported(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bars = _clean() + [_bar("reliance", 0)]  # lower case: a bad symbol, not a broken bar
    result = enforce(_run(spark, tmp_path, bars, "2026-04-06"))
    assert result.success_critical and not result.success
    assert result.failed_critical == ()
    assert result.failed_warning == ("expect_column_values_to_match_regex(symbol)",)
    assert "'reliance'" in result.failures[0].detail


def test_profile_measures_rows_order_and_freshness(spark) -> None:  # type: ignore[no-untyped-def]
    bars = _clean()
    bars[2]["offset"], bars[3]["offset"] = 3, 2  # minute 3 arrived before minute 2
    profile = batch_profile(
        _silver(spark, bars), previous_day_rows=4, as_of=end_of_trade_date(DAY)
    ).iloc[0]
    assert profile["rows"] == 8 and profile["previous_day_rows"] == 4
    assert profile["rows_ratio"] == 2.0
    assert profile["out_of_order"] == 1
    # Newest bar 03:48 UTC; the Kolkata day ends at 18:30 UTC.
    assert profile["freshness_minutes"] == (18 * 60 + 30) - (3 * 60 + 48)
    assert profile["max_event_time"] == "2026-04-06T03:48:00+00:00"

    unordered = batch_profile(
        _silver(spark, bars).drop("offset"), previous_day_rows=None, as_of=end_of_trade_date(DAY)
    ).iloc[0]
    assert unordered.isna()[["previous_day_rows", "rows_ratio", "out_of_order"]].all()
    with pytest.raises(ValueError, match="timezone-aware"):
        batch_profile(_silver(spark, bars), previous_day_rows=None, as_of=dt.datetime(2026, 4, 7))


def test_profile_empty_day_fails_critically(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    profile = batch_profile(_silver(spark, []), previous_day_rows=8, as_of=end_of_trade_date(DAY))
    result = validate(
        profile, profile_suite(), name="silver_markets_profile", context_dir=tmp_path, run_label="x"
    )
    assert result.failed_critical == ("expect_column_values_to_be_between(rows)",)
    with pytest.raises(QualityGateFailed, match=r"expect_column_values_to_be_between\(rows\)"):
        enforce(result)
    assert PROFILE_SUITE in result.data_docs_index.read_text()


def test_profile_row_jump_warns_and_first_day_passes(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bars = [_bar(f"S{s}", i) for s in range(5) for i in range(4)]
    as_of = OPEN + dt.timedelta(hours=1)

    def run(previous: int | None, label: str) -> QualityResult:
        profile = batch_profile(_silver(spark, bars), previous_day_rows=previous, as_of=as_of)
        return validate(
            profile,
            profile_suite(),
            name="silver_markets_profile",
            context_dir=tmp_path,
            run_label=label,
        )

    jump = enforce(run(4, "jump"))  # 20 rows after 4: five times as many
    assert jump.failed_critical == ()
    assert jump.failed_warning == ("expect_column_values_to_be_between(rows_ratio)",)
    assert "5.0" in jump.failures[0].detail
    first = enforce(run(None, "first-day"))  # no previous day: the ratio is not evaluated
    assert first.success, first.failures
