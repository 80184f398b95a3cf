from __future__ import annotations

import random

import pytest

from spark.rules import (
    MarketRuleParams,
    SymbolState,
    accept,
    evaluate_ready,
    fired_rules,
    score,
)

P = MarketRuleParams(lateness_minutes=0)


def bar(minute: int, close: float = 100.0, volume: int = 1000) -> dict:
    return {"minute": minute, "close": close, "volume": volume, "offset": minute}


def run(bars: list[dict], params: MarketRuleParams = P) -> dict[int, dict]:
    state = SymbolState()
    out = []
    for b in bars:
        assert accept(state, b) is None
        out += evaluate_ready(state, params)
    out += evaluate_ready(state, params, flush=True)
    return {b["minute"]: b for b in out}


def test_a1_fires_only_strictly_above_the_threshold() -> None:
    hist = {9: (100.0, 1000)}
    assert score(hist, 10, 100.51, 1, P)["a1"] is True
    assert score(hist, 10, 99.49, 1, P)["a1"] is True  # a fall counts too
    assert score(hist, 10, 100.5, 1, P)["a1"] is False  # exactly 0.5 % is not "more than"
    assert score(hist, 10, 100.5, 1, P)["close_change"] == pytest.approx(0.005)


def test_a1_needs_the_bar_of_exactly_the_previous_minute() -> None:
    hist = {8: (100.0, 1000)}  # minute 9 missing: a gap
    result = score(hist, 10, 200.0, 1, P)
    assert result["a1"] is None and result["prev_close"] is None


def test_a2_uses_the_ten_minutes_before_and_not_the_current_one() -> None:
    hist = {m: (100.0, 1000) for m in range(0, 10)}
    assert score(hist, 10, 100.0, 1021, P)["a2"] is True
    assert score(hist, 10, 100.0, 1020, P)["a2"] is False  # 1.02 x 1000 is not "more than"
    assert score(hist, 10, 100.0, 1020, P)["mean_volume"] == 1000
    hist[5] = (100.0, 11000)  # the mean is over the window: (9 x 1000 + 11000) / 10 = 2000
    assert score(hist, 10, 100.0, 2041, P)["mean_volume"] == 2000


def test_a2_is_not_evaluated_with_fewer_than_ten_minutes() -> None:
    hist = {m: (100.0, 1000) for m in range(1, 10)}  # 9 bars
    result = score(hist, 10, 100.0, 99999, P)
    assert result["a2"] is None and result["history_minutes"] == 9
    relaxed = MarketRuleParams(a2_min_history=5)
    assert score(hist, 10, 100.0, 99999, relaxed)["a2"] is True


def test_session_open_and_gaps_suppress_rules_until_history_returns() -> None:
    bars = [bar(m, 100.0 + (m % 2), 1000) for m in range(0, 30) if m != 15]
    out = run(bars)
    assert out[0]["a1"] is None and out[0]["a2"] is None  # session open
    assert out[1]["a1"] is True  # 100 -> 101 is 1 %
    assert out[9]["a2"] is None and out[10]["a2"] is False  # 10 minutes of history needed
    assert out[16]["a1"] is None  # minute 15 missing: no previous minute
    assert all(out[m]["a2"] is None for m in range(16, 26))  # the gap is inside the window
    assert out[26]["a2"] is False


def test_duplicates_and_late_bars_are_refused_with_a_reason() -> None:
    state = SymbolState()
    assert accept(state, bar(1)) is None
    assert "duplicate" in str(accept(state, bar(1, 999.0)))
    assert accept(state, bar(2)) is None
    evaluate_ready(state, P)
    assert "duplicate" in str(accept(state, bar(2)))
    assert accept(state, bar(4)) is None
    evaluate_ready(state, P)
    assert "late" in str(accept(state, bar(3)))  # minute 4 was already evaluated


def test_out_of_order_within_the_lateness_gives_the_sorted_result() -> None:
    rng = random.Random(3)
    closes = [100.0]
    for _ in range(200):
        closes.append(round(closes[-1] * (1 + rng.gauss(0, 0.004)), 2))
    bars = [bar(m, c, rng.randint(500, 2000)) for m, c in enumerate(closes)]
    shuffled = list(bars)
    for i in range(0, len(shuffled) - 3, 7):  # local disorder of up to 3 positions
        shuffled[i], shuffled[i + 3] = shuffled[i + 3], shuffled[i]
    params = MarketRuleParams(lateness_minutes=3)
    assert run(shuffled, params) == run(bars, params)
    assert any(b["a1"] for b in run(bars, params).values())


def test_bars_wait_for_the_watermark_and_a_flush_releases_them() -> None:
    params = MarketRuleParams(lateness_minutes=2)
    state = SymbolState()
    for m in range(5):
        accept(state, bar(m))
    assert [b["minute"] for b in evaluate_ready(state, params)] == [0, 1, 2]
    assert [b["minute"] for b in evaluate_ready(state, params, flush=True)] == [3, 4]
    assert state.pending == {}


def test_state_survives_serialisation_and_stays_bounded() -> None:
    state = SymbolState()
    for m in range(100):
        accept(state, bar(m, 100.0 + m, 1000 + m))
        evaluate_ready(state, P)
    restored = SymbolState.from_json(state.to_json())
    assert restored == state
    assert len(state.history) <= P.a2_window_minutes + 1
    accept(restored, bar(100, 200.0))
    accept(state, bar(100, 200.0))
    assert evaluate_ready(restored, P) == evaluate_ready(state, P)


def test_fired_rules_names() -> None:
    assert fired_rules({"a1": True, "a2": None}) == ["A1"]
    assert fired_rules({"a1": True, "a2": True}) == ["A1", "A2"]
    assert fired_rules({"a1": False, "a2": None}) == []
