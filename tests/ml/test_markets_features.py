from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from anomalake.detection.markets import MarketRuleParams, SymbolState, accept_bars, evaluate_ready
from anomalake.errors import AnomalakeError
from anomalake.generators.markets import EXCHANGE_TZ, generate_bars
from ml.features.markets import FEATURE_COLUMNS, bar_features, epoch_minutes, valid_bars

OPEN_1 = datetime(2026, 1, 5, 9, 15, tzinfo=EXCHANGE_TZ)
OPEN_2 = datetime(2026, 1, 6, 9, 15, tzinfo=EXCHANGE_TZ)
SPIKE = 12  # minute of AAA's volume spike (x10)
GAP = 14  # AAA has no bar at this minute


def bar(symbol: str, at: datetime, close: float, volume: int) -> dict[str, object]:
    return {
        "symbol": symbol,
        "timestamp": pd.Timestamp(at),
        "open": close,
        "high": close + 1.0,
        "low": close - 1.0,
        "close": close,
        "volume": volume,
    }


def hand_made() -> pd.DataFrame:
    """AAA: minutes 0..25 of a session (no 14, a x10 spike at 12), then the next open.

    BBB: a flat symbol at the same minutes, to show the features stay per symbol. The frame
    is shuffled, holds a bar without time and ends with a duplicate of AAA's minute 11.
    """
    rows = []
    for i in range(26):
        at = OPEN_1 + timedelta(minutes=i)
        if i != GAP:
            rows.append(bar("AAA", at, 100.0 + i, 1000 if i == SPIKE else 100))
        rows.append(bar("BBB", at, 50.0, 5000))
    rows.append(bar("AAA", OPEN_2, 200.0, 100))
    no_time = bar("AAA", OPEN_1, 100.0, 100)
    no_time["timestamp"] = pd.NaT
    rows.append(no_time)
    shuffled = [rows[i] for i in np.random.default_rng(3).permutation(len(rows))]
    # A later bar of a minute already seen: scored, but the first one stays the history.
    shuffled.append(bar("AAA", OPEN_1 + timedelta(minutes=11), 500.0, 9999))
    frame = pd.DataFrame(shuffled)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame.set_axis(range(100, 100 + len(frame)))


def row_of(frame: pd.DataFrame, symbol: str, at: datetime | None, volume: int | None = None) -> int:
    match = frame["symbol"] == symbol
    if at is None:
        match &= frame["timestamp"].isna()
    else:
        match &= frame["timestamp"] == pd.Timestamp(at)
    if volume is not None:
        match &= frame["volume"] == volume
    (index,) = frame.index[match]
    return int(index)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return hand_made()


@pytest.fixture(scope="module")
def features(frame: pd.DataFrame) -> pd.DataFrame:
    return bar_features(frame)


def aaa(frame: pd.DataFrame, features: pd.DataFrame, minute: int) -> pd.Series:
    volume = 1000 if minute == SPIKE else 100
    return features.loc[row_of(frame, "AAA", OPEN_1 + timedelta(minutes=minute), volume)]


def test_one_row_per_input_row_in_the_input_order(
    frame: pd.DataFrame, features: pd.DataFrame
) -> None:
    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert features.index.equals(frame.index)
    assert not features.isna().any().any()


def test_session_open_has_no_return_and_no_volume_ratio(
    frame: pd.DataFrame, features: pd.DataFrame
) -> None:
    first = aaa(frame, features, 0)
    assert first.to_dict() == {
        "log_return": 0.0,
        "abs_return": 0.0,
        "volume_ratio": 1.0,
        "log_volume_ratio": 0.0,
        "range": pytest.approx(2.0 / 100.0),
        "has_return": 0.0,
        "has_volume_ratio": 0.0,
    }
    # The next day's open: the previous bar is yesterday's, not the previous minute.
    next_open = features.loc[row_of(frame, "AAA", OPEN_2)]
    assert (next_open["has_return"], next_open["has_volume_ratio"]) == (0.0, 0.0)
    assert next_open["log_return"] == 0.0 and next_open["range"] == pytest.approx(2.0 / 200.0)


def test_returns_are_against_the_previous_minute(
    frame: pd.DataFrame, features: pd.DataFrame
) -> None:
    for i in (1, 5, 13):
        f = aaa(frame, features, i)
        assert f["has_return"] == 1.0
        assert f["log_return"] == pytest.approx(math.log((100.0 + i) / (99.0 + i)))
        assert f["abs_return"] == pytest.approx(1.0 / (99.0 + i))
        assert f["range"] == pytest.approx(2.0 / (100.0 + i))


def test_warm_up_lasts_ten_minutes(frame: pd.DataFrame, features: pd.DataFrame) -> None:
    for i in range(10):
        assert aaa(frame, features, i)["has_volume_ratio"] == 0.0, i
    for i in (10, 11):
        f = aaa(frame, features, i)
        assert (f["has_volume_ratio"], f["volume_ratio"], f["log_volume_ratio"]) == (1.0, 1.0, 0.0)


def test_spike_and_the_minutes_after_it(frame: pd.DataFrame, features: pd.DataFrame) -> None:
    spike = aaa(frame, features, SPIKE)
    # Mean of minutes 2..11 is 100: the duplicate of minute 11 (volume 9999) is not history.
    assert spike["volume_ratio"] == pytest.approx(10.0)
    assert spike["log_volume_ratio"] == pytest.approx(math.log(1001.0 / 101.0))
    after = aaa(frame, features, SPIKE + 1)
    assert after["volume_ratio"] == pytest.approx(100.0 / 190.0)  # window 3..12 holds the spike
    assert after["log_volume_ratio"] == pytest.approx(math.log(101.0 / 191.0))


def test_gap_suspends_return_for_a_minute_and_volume_ratio_for_ten(
    frame: pd.DataFrame, features: pd.DataFrame
) -> None:
    after_gap = aaa(frame, features, GAP + 1)
    assert after_gap["has_return"] == 0.0 and after_gap["log_return"] == 0.0
    assert aaa(frame, features, GAP + 2)["has_return"] == 1.0
    for i in range(GAP + 1, GAP + 11):  # their windows hold minute 14
        assert aaa(frame, features, i)["has_volume_ratio"] == 0.0, i
    back = aaa(frame, features, GAP + 11)  # window 15..24, all present, all 100
    assert (back["has_volume_ratio"], back["volume_ratio"]) == (1.0, 1.0)


def test_duplicate_is_scored_against_the_history_and_bad_rows_are_imputed(
    frame: pd.DataFrame, features: pd.DataFrame
) -> None:
    dup = features.loc[row_of(frame, "AAA", OPEN_1 + timedelta(minutes=11), volume=9999)]
    assert dup["volume_ratio"] == pytest.approx(99.99)  # minutes 1..10, mean 100
    assert dup["log_return"] == pytest.approx(math.log(500.0 / 110.0))
    bad = features.loc[row_of(frame, "AAA", None)]
    assert bad.to_dict() == {
        "log_return": 0.0,
        "abs_return": 0.0,
        "volume_ratio": 1.0,
        "log_volume_ratio": 0.0,
        "range": 0.0,
        "has_return": 0.0,
        "has_volume_ratio": 0.0,
    }


def test_symbols_do_not_mix(frame: pd.DataFrame, features: pd.DataFrame) -> None:
    bbb = features[(frame["symbol"] == "BBB").to_numpy()]
    assert (bbb["log_return"] == 0.0).all()
    assert (bbb["has_return"] == 1.0).sum() == 25
    assert (bbb.loc[bbb["has_volume_ratio"] == 1.0, "volume_ratio"] == 1.0).all()
    assert (bbb["has_volume_ratio"] == 1.0).sum() == 16


def test_features_of_a_row_do_not_depend_on_frame_order(frame: pd.DataFrame) -> None:
    # Any order, as long as the duplicate stays after the bar it duplicates.
    shuffled = pd.concat([frame.iloc[:-1].sample(frac=1.0, random_state=11), frame.iloc[-1:]])
    pd.testing.assert_frame_equal(bar_features(shuffled).loc[frame.index], bar_features(frame))
    # The first of two bars of a minute is the history: swapping them changes minute 12.
    swapped = pd.concat([frame.iloc[-1:], frame.iloc[:-1]])
    spike = row_of(frame, "AAA", OPEN_1 + timedelta(minutes=SPIKE))
    assert bar_features(swapped).loc[spike, "volume_ratio"] == pytest.approx(
        1000 / ((9 * 100 + 9999) / 10)
    )


def test_timestamps_as_text_naive_or_local_give_the_same_minutes() -> None:
    local = pd.Series(pd.to_datetime(["2026-01-05 09:15:00+05:30", "2026-01-05 09:16:59+05:30"]))
    text = pd.Series(["2026-01-05 09:15:00+05:30", "2026-01-05 09:16:59+05:30"])
    naive_utc = pd.Series(pd.to_datetime(["2026-01-05 03:45:00", "2026-01-05 03:46:59"]))
    first = int(pd.Timestamp("2026-01-05 03:45:00", tz="UTC").timestamp()) // 60
    expected = [first, first + 1]
    for stamps in (local, text, naive_utc):
        assert epoch_minutes(stamps).tolist() == expected
    assert epoch_minutes(pd.Series(["2026-13-45 99:99:00"])).isna().all()


def test_invalid_bars_are_those_the_stream_quarantines() -> None:
    base = bar("AAA", OPEN_1, 100.0, 100)
    bad = [
        {**base, "close": float("nan")},
        {**base, "low": 0.0},
        {**base, "volume": -1},
        {**base, "volume": 1.5},
        {**base, "symbol": None},
    ]
    frame = pd.DataFrame([base, {**base, "volume": 0}, *bad])
    assert valid_bars(frame).tolist() == [True, True, False, False, False, False, False]


def test_missing_columns_are_named() -> None:
    with pytest.raises(AnomalakeError, match="lack columns \\['volume'\\]"):
        bar_features(pd.DataFrame(columns=["symbol", "timestamp", "open", "high", "low", "close"]))


def test_empty_frame_gives_empty_features() -> None:
    empty = pd.DataFrame(columns=["symbol", "timestamp", "open", "high", "low", "close", "volume"])
    assert bar_features(empty).shape == (0, len(FEATURE_COLUMNS))


def test_return_and_volume_ratio_are_the_rule_quantities() -> None:
    """On generated bars with gaps, abs_return and volume_ratio are anomalake.detection.markets'."""
    parts = [generate_bars(s, date(2026, 1, 5), 2, seed=4) for s in ("AAA", "BBB")]
    bars = pd.concat([p[0] for p in parts], ignore_index=True)
    bars = bars.drop(bars.index[::23]).sample(frac=1.0, random_state=0)
    features = bar_features(bars)
    minutes = epoch_minutes(bars["timestamp"])
    parts = []
    for _, rows in bars.assign(minute=minutes).groupby("symbol"):
        state = SymbolState()
        assert accept_bars(state, rows[["symbol", "minute", "close", "volume"]]).isna().all()
        parts.append(evaluate_ready(state, MarketRuleParams(), flush=True))
    scored = pd.concat(parts).set_index(["symbol", "minute"])
    rules = scored.loc[list(zip(bars["symbol"], minutes, strict=True))]
    change = rules["close_change"].to_numpy(dtype=float)
    ratio = rules["volume_ratio"].to_numpy(dtype=float)
    np.testing.assert_array_equal(features["has_return"].to_numpy() == 1.0, ~np.isnan(change))
    np.testing.assert_array_equal(features["has_volume_ratio"].to_numpy() == 1.0, ~np.isnan(ratio))
    np.testing.assert_allclose(features["abs_return"], np.nan_to_num(change), rtol=1e-12)
    np.testing.assert_allclose(features["volume_ratio"], np.nan_to_num(ratio, nan=1.0), rtol=1e-12)
