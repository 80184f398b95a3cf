from __future__ import annotations

import random
from typing import Any

import numpy as np
import pandas as pd
import pytest

from anomalake.detection.markets import (
    DUPLICATE_REASON,
    LATE_REASON,
    SCORE_COLUMNS,
    MarketRuleParams,
    SymbolState,
    accept_bars,
    evaluate_ready,
)

P = MarketRuleParams(lateness_minutes=0)


def bar(minute: int, close: float = 100.0, volume: int = 1000) -> dict:
    return {"minute": minute, "close": close, "volume": volume, "offset": minute}


def bars(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["minute", "close", "volume", "offset"])


def accept(state: SymbolState, *rows: dict) -> list[str | None]:
    return accept_bars(state, bars(*rows)).tolist()


def score(
    history: dict[int, tuple[float, int]],
    minute: int,
    close: float,
    volume: int,
    params: MarketRuleParams = P,
) -> dict[str, Any]:
    """A1/A2 of one bar evaluated after ``history`` (minute -> (close, volume))."""
    minutes = sorted(history)
    state = SymbolState(
        minutes=np.array(minutes, dtype=np.int64),
        close=np.array([history[m][0] for m in minutes], dtype=np.float64),
        volume=np.array([history[m][1] for m in minutes], dtype=np.int64),
        frontier=minutes[-1] if minutes else None,
    )
    assert accept(state, bar(minute, close, volume)) == [None]
    row = evaluate_ready(state, params, flush=True).iloc[0]
    return {k: None if pd.isna(row[k]) else row[k].item() for k in SCORE_COLUMNS}


def run(rows: list[dict], params: MarketRuleParams = P, batch: int = 1) -> pd.DataFrame:
    """Bars accepted ``batch`` at a time, evaluated after each batch, flushed; by minute."""
    state = SymbolState()
    out = []
    for i in range(0, len(rows), batch):
        assert accept(state, *rows[i : i + batch]) == [None] * len(rows[i : i + batch])
        out.append(evaluate_ready(state, params))
    out.append(evaluate_ready(state, params, flush=True))
    scored = pd.concat(out, ignore_index=True)
    assert scored["minute"].is_monotonic_increasing  # evaluated in minute order
    return scored.set_index("minute", drop=False)


def test_a1_fires_only_strictly_above_the_threshold() -> None:
    hist = {9: (100.0, 1000)}
    assert score(hist, 10, 100.51, 1)["a1"] is True
    assert score(hist, 10, 99.49, 1)["a1"] is True  # a fall counts too
    assert score(hist, 10, 100.5, 1)["a1"] is False  # exactly 0.5 % is not "more than"
    assert score(hist, 10, 100.5, 1)["close_change"] == pytest.approx(0.005)
    assert score(hist, 10, 100.5, 1)["prev_close"] == 100.0


def test_a1_needs_the_bar_of_exactly_the_previous_minute() -> None:
    hist = {8: (100.0, 1000)}  # minute 9 missing: a gap
    result = score(hist, 10, 200.0, 1)
    assert result["a1"] is None and result["prev_close"] is None
    assert result["close_change"] is None


def test_a1_is_not_evaluated_after_a_zero_close() -> None:
    result = score({9: (0.0, 1000)}, 10, 100.0, 1)
    assert result["prev_close"] == 0.0
    assert result["close_change"] is None and result["a1"] is None


def test_a2_uses_the_ten_minutes_before_and_not_the_current_one() -> None:
    hist = {m: (100.0, 1000) for m in range(0, 10)}
    assert score(hist, 10, 100.0, 1021)["a2"] is True
    assert score(hist, 10, 100.0, 1020)["a2"] is False  # 1.02 x 1000 is not "more than"
    assert score(hist, 10, 100.0, 1020)["mean_volume"] == 1000
    assert score(hist, 10, 100.0, 1020)["volume_ratio"] == 1.02
    hist[5] = (100.0, 11000)  # the mean is over the window: (9 x 1000 + 11000) / 10 = 2000
    assert score(hist, 10, 100.0, 2041)["mean_volume"] == 2000


def test_a2_is_not_evaluated_with_fewer_than_ten_minutes() -> None:
    hist = {m: (100.0, 1000) for m in range(1, 10)}  # 9 bars
    result = score(hist, 10, 100.0, 99999)
    assert result["a2"] is None and result["history_minutes"] == 9
    assert result["mean_volume"] is None and result["volume_ratio"] is None
    relaxed = MarketRuleParams(a2_min_history=5)
    assert score(hist, 10, 100.0, 99999, relaxed)["a2"] is True


def test_a2_with_a_zero_mean_is_evaluated_without_a_ratio() -> None:
    result = score({m: (100.0, 0) for m in range(0, 10)}, 10, 100.0, 1)
    assert result["mean_volume"] == 0.0 and result["volume_ratio"] is None
    assert result["a2"] is True


def test_large_volumes_follow_python_integer_arithmetic() -> None:
    """Beyond 2**53 a float sum would round: the mean is sum(ints) / len, as in Python."""
    volumes = [2**53 + 2 * k + 1 for k in range(10)]
    hist = {m: (100.0, v) for m, v in enumerate(volumes)}
    own = 2**53 + 7
    result = score(hist, 10, 100.0, own)
    mean = sum(volumes) / len(volumes)
    assert result["mean_volume"] == mean
    assert result["volume_ratio"] == own / mean
    assert result["a2"] is (own > 1.02 * mean)


def test_session_open_and_gaps_suppress_rules_until_history_returns() -> None:
    rows = [bar(m, 100.0 + (m % 2), 1000) for m in range(0, 30) if m != 15]
    out = run(rows)
    assert out.loc[0, "a1"] is pd.NA and out.loc[0, "a2"] is pd.NA  # session open
    assert out.loc[1, "a1"]  # 100 -> 101 is 1 %
    assert out.loc[9, "a2"] is pd.NA and not out.loc[10, "a2"]  # 10 minutes of history
    assert out.loc[16, "a1"] is pd.NA  # minute 15 missing: no previous minute
    assert out.loc[16:25, "a2"].isna().all()  # the gap is inside the window
    assert out.loc[26, "a2"] is np.False_
    assert out.loc[26, "history_minutes"] == 10 and out.loc[20, "history_minutes"] == 9


def test_duplicates_and_late_bars_are_refused_with_a_reason() -> None:
    state = SymbolState()
    assert accept(state, bar(1)) == [None]
    assert accept(state, bar(1, 999.0)) == [DUPLICATE_REASON]  # against pending
    assert accept(state, bar(2)) == [None]
    evaluate_ready(state, P)
    assert accept(state, bar(2)) == [DUPLICATE_REASON]  # against the history
    assert accept(state, bar(4)) == [None]
    evaluate_ready(state, P)
    assert accept(state, bar(3)) == [LATE_REASON.format(frontier=4)]
    assert LATE_REASON.format(frontier=4) == (
        "late: minute arrived after the symbol's watermark had passed it (last evaluated minute 4)"
    )


def test_within_one_frame_the_first_arrival_of_a_minute_wins() -> None:
    state = SymbolState()
    assert accept(state, bar(1)) == [None]
    evaluate_ready(state, P)
    reasons = accept(state, bar(5, 1.0), bar(0), bar(5, 2.0), bar(0), bar(1), bar(6), bar(5))
    late = LATE_REASON.format(frontier=1)
    dup = DUPLICATE_REASON
    assert reasons == [None, late, dup, late, dup, None, dup]
    assert state.max_minute == 6
    out = evaluate_ready(state, P, flush=True)
    assert out["minute"].tolist() == [5, 6] and out["close"].tolist() == [1.0, 100.0]


def test_out_of_order_within_the_lateness_gives_the_sorted_result() -> None:
    rng = random.Random(3)
    closes = [100.0]
    for _ in range(200):
        closes.append(round(closes[-1] * (1 + rng.gauss(0, 0.004)), 2))
    rows = [bar(m, c, rng.randint(500, 2000)) for m, c in enumerate(closes)]
    shuffled = list(rows)
    for i in range(0, len(shuffled) - 3, 7):  # local disorder of up to 3 positions
        shuffled[i], shuffled[i + 3] = shuffled[i + 3], shuffled[i]
    params = MarketRuleParams(lateness_minutes=3)
    expected = run(rows, params)
    for batch in (1, 4, 50, 1000):
        pd.testing.assert_frame_equal(run(shuffled, params, batch), expected)
    assert expected["a1"].any() and expected["a2"].any()


def test_bars_wait_for_the_watermark_and_a_flush_releases_them() -> None:
    params = MarketRuleParams(lateness_minutes=2)
    state = SymbolState()
    accept(state, *(bar(m) for m in (4, 0, 2, 1, 3)))
    assert evaluate_ready(state, params)["minute"].tolist() == [0, 1, 2]
    assert state.frontier == 2 and state.pending["minute"].tolist() == [4, 3]
    assert evaluate_ready(state, params)["minute"].tolist() == []
    assert evaluate_ready(state, params, flush=True)["minute"].tolist() == [3, 4]
    assert state.pending_count == 0 and state.pending.empty


def test_every_column_of_a_bar_is_carried_through() -> None:
    state = SymbolState()
    frame = bars(bar(2), bar(1)).assign(tag=["b", None], when=pd.to_datetime([5, 6], unit="s"))
    accept_bars(state, frame)
    out = evaluate_ready(state, P, flush=True)
    assert list(out.columns) == [*frame.columns, *SCORE_COLUMNS]
    assert out["tag"].tolist() == [None, "b"] and out["offset"].tolist() == [1, 2]
    assert out["when"].dtype == frame["when"].dtype


def test_state_survives_serialisation_and_stays_bounded() -> None:
    state = SymbolState()
    for m in range(100):
        accept(state, bar(m, 100.0 + m, 1000 + m))
        evaluate_ready(state, P)
    restored = SymbolState.from_json(state.to_json())
    assert restored.to_json() == state.to_json()
    assert restored.minutes.tolist() == state.minutes.tolist()
    assert restored.close.tolist() == state.close.tolist()
    assert (restored.frontier, restored.max_minute) == (state.frontier, state.max_minute)
    assert len(state.minutes) <= P.a2_window_minutes + 1
    accept(restored, bar(100, 200.0))
    accept(state, bar(100, 200.0))
    pd.testing.assert_frame_equal(evaluate_ready(restored, P), evaluate_ready(state, P))


def test_pending_rows_round_trip_exactly_with_their_dtypes() -> None:
    """Pending rows as the stream has them: timestamps, nullable ints, strings, floats."""
    frame = pd.DataFrame(
        {
            "symbol": ["AAA", "AAA", "AAA"],
            "event_time": pd.to_datetime(
                [1_767_000_000_123_456, 1_767_000_060_000_001, 0], unit="us"
            ),
            "minute": pd.array([29_450_000, 29_450_001, 29_450_002], dtype="Int64"),
            "close": [0.1 + 0.2, 1e-300, float("nan")],
            "volume": pd.array([2**62, 0, 7], dtype="Int64"),
            "schema_version": pd.array([1, None, 1], dtype="Int32"),
            "reason": [None, None, None],
            "key": ["AAA", None, 'é"\\'],
            "kafka_timestamp": pd.to_datetime([None, 1, 2], unit="us"),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "local": pd.to_datetime([0, 1, 2], unit="s").tz_localize("Asia/Kolkata"),
            "count": np.array([1, 2, 3], dtype=np.int32),
        }
    )
    state = SymbolState()
    assert accept_bars(state, frame).isna().all()
    restored = SymbolState.from_json(state.to_json())
    pd.testing.assert_frame_equal(restored.pending, frame, check_exact=True)
    assert restored.to_json() == state.to_json()


def test_a_state_of_the_former_format_is_refused_with_the_remedy() -> None:
    former = '{"h":[[1,100.0,5],[2,100.0,5],[3,100.0,5]],"p":[],"f":3,"x":3}'
    with pytest.raises(ValueError, match="new checkpoint"):
        SymbolState.from_json(former)
