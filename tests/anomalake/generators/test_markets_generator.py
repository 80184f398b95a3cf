from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from anomalake.generators.markets import (
    NO_FAULTS,
    SESSION_MINUTES,
    FaultRates,
    generate_bars,
    trading_days,
    with_faults,
    write_market_files,
)


def test_trading_days_skip_weekends_and_holidays() -> None:
    days = trading_days(date(2026, 1, 23), 4)  # Fri 23, (Sat, Sun), Mon 26 is a holiday
    assert days == [date(2026, 1, 23), date(2026, 1, 27), date(2026, 1, 28), date(2026, 1, 29)]


def test_bars_cover_the_session_and_are_consistent() -> None:
    bars, labels = generate_bars("ABC", date(2026, 1, 5), 2, seed=1, anomaly_rate=0.01)
    assert len(bars) == 2 * SESSION_MINUTES
    local = bars["timestamp"].dt.strftime("%H:%M")
    assert local.iloc[0] == "09:15" and local.iloc[SESSION_MINUTES - 1] == "15:29"
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["volume"] > 0).all()
    assert set(labels["kind"]) == {"price_jump", "volume_spike"}
    jumps = labels[labels["kind"] == "price_jump"]["timestamp"]
    moves = bars.set_index("timestamp")["close"].pct_change().abs()
    assert (moves.loc[jumps] > 0.005).mean() > 0.8  # injected jumps are visible moves


def test_generation_is_deterministic() -> None:
    a, la = generate_bars("ABC", date(2026, 1, 5), 1, seed=7)
    b, lb = generate_bars("ABC", date(2026, 1, 5), 1, seed=7)
    c, _ = generate_bars("ABC", date(2026, 1, 5), 1, seed=8)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(la, lb)
    assert not a["close"].equals(c["close"])


def test_faults_are_applied_and_logged() -> None:
    bars, _ = generate_bars("ABC", date(2026, 1, 5), 3, seed=2)
    rows, log = with_faults(bars, FaultRates(0.02, 0.02, 0.02, 0.02), seed=2)
    kinds = pd.Series([f["fault"].split(":")[0].split(" ")[0] for f in log]).value_counts()
    assert {"gap", "malformed", "duplicate", "moved"} <= set(kinds.index)
    assert len(rows) == len(bars) - kinds["gap"] + kinds["duplicate"]
    clean_rows, clean_log = with_faults(bars, NO_FAULTS)
    assert clean_log == [] and len(clean_rows) == len(bars)


def test_write_market_files_uses_the_export_layout(tmp_path: Path) -> None:
    paths = write_market_files(tmp_path, 2, date(2026, 1, 5), 1, seed=3)
    assert [p.name for p in paths] == [
        "SYM000__EQ__NSE__NSE__MINUTE.csv",
        "SYM001__EQ__NSE__NSE__MINUTE.csv",
    ]
    head = paths[0].read_text().splitlines()[:2]
    assert head[0] == "timestamp,open,high,low,close,volume"
    assert head[1].startswith("2026-01-05 09:15:00+05:30,")
    assert (tmp_path / "labels.csv").exists() and (tmp_path / "faults.csv").exists()
