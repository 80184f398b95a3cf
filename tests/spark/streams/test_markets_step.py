"""The markets speed layer's per-symbol step, without Spark: rules, order, state, flush."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalake.detection.markets import MarketRuleParams, SymbolState
from anomalake.generators.markets import FaultRates, write_market_files
from anomalake.loaders.markets import market_files
from anomalake.replay import interleave
from anomalake.speed.markets import (
    IDLE,
    SCORED,
    SCORED_DTYPES,
    MarketsStep,
    guarded_arrivals,
    score_arrivals,
)
from spark.streams.speed import state_function
from tests.spark.streams.fake_state import FakeGroupState
from tests.spark.streams.reference import reference_anomalies

PRICES = ["open", "high", "low", "close"]


def validated_records(path: Path) -> pd.DataFrame:
    """The export rows in replay order as validated records, as Spark hands them to pandas.

    Two partitions (a symbol keeps to one), offsets in replay order; an invalid row gets a
    reason and its raw text; nullable integer columns are floats, timestamps naive UTC.
    """
    raw = pd.DataFrame(list(interleave(market_files(path))))
    stamps = pd.to_datetime(raw["timestamp"], errors="coerce", utc=True, format="ISO8601")
    numbers = raw[[*PRICES, "volume"]].apply(pd.to_numeric, errors="coerce")
    prices, volume = numbers[PRICES], numbers["volume"]
    bad = (
        stamps.isna()
        | ~(np.isfinite(prices) & (prices > 0)).all(axis=1)
        | ~(volume >= 0)
        | (volume != np.floor(volume))
    )
    symbols = sorted(raw["symbol"].unique())
    partition = raw["symbol"].map({s: i % 2 for i, s in enumerate(symbols)}).astype(np.int32)
    text = raw.astype(str).agg(",".join, axis=1)
    return pd.DataFrame(
        {
            "symbol": raw["symbol"],
            "event_time": stamps.dt.tz_convert(None),
            "minute": np.floor(stamps.astype("int64") / 60e9).where(stamps.notna()),
            **{p: prices[p] for p in PRICES},
            "volume": np.trunc(volume),
            "schema_version": np.int32(1),
            "reason": pd.Series("invalid bar", index=raw.index).where(bad, None),
            "raw_value": text.where(bad, None),
            "key": raw["symbol"],
            "topic": "bars",
            "partition": partition,
            "offset": raw.groupby(partition).cumcount().astype(np.int64),
            "kafka_timestamp": pd.Timestamp("2026-02-02 08:00:00"),
        }
    )


def stream(records: pd.DataFrame, sizes: Iterator[int], params: MarketRuleParams) -> pd.DataFrame:
    """Micro-batches of ``sizes`` records through the state function, then a timeout each."""
    step = state_function(MarketsStep(params, flush_after_ms=2000, ttl_ms=60_000))
    states: dict[str, FakeGroupState] = {}
    out: list[pd.DataFrame] = []
    start = 0
    while start < len(records):
        size = next(sizes)
        batch = records.iloc[start : start + size].sample(frac=1.0, random_state=start)
        start += size
        for symbol, group in batch.groupby("symbol", sort=False, dropna=False):
            state = states.setdefault(symbol, FakeGroupState())
            halves = [group.iloc[: len(group) // 2], group.iloc[len(group) // 2 :]]
            out += step((symbol,), iter(halves), state)
    for symbol, state in states.items():
        state.hasTimedOut = True
        out += step((symbol,), iter([]), state)
        assert state.get[0].startswith(IDLE) and state.timeout_ms == 60_000
        assert SymbolState.from_json(state.get[0][len(IDLE) :]).pending_count == 0
    for frame in out:
        assert list(frame.columns) == [c.name for c in SCORED]
        assert list(frame.dtypes) == list(SCORED_DTYPES.values())
        assert len(frame)
    return pd.concat(out, ignore_index=True)


def fired(scored: pd.DataFrame) -> set[tuple[str, int, str]]:
    bars = scored[scored["reason"].isna()]
    a1, a2 = bars["a1"].fillna(False), bars["a2"].fillna(False)
    rules = np.where(a1 & a2, "A1,A2", np.where(a1, "A1", "A2"))
    hits = (a1 | a2).to_numpy()
    return set(
        zip(bars["symbol"][hits], bars["minute"][hits].astype(int), rules[hits], strict=True)
    )


def by_record(scored: pd.DataFrame) -> pd.DataFrame:
    return scored.sort_values(["partition", "offset"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bars")
    faults = FaultRates(0.01, 0.01, 0.01, 0.01, max_disorder=3)
    write_market_files(path, 4, date(2026, 2, 2), 2, seed=11, faults=faults)
    return path


def test_stream_step_equals_the_independent_computation_for_any_batch_split(
    export: Path,
) -> None:
    records = validated_records(export)
    params = MarketRuleParams()
    expected = reference_anomalies(export)
    assert len(expected) > 50
    rng = np.random.default_rng(0)
    runs = {
        "one batch": stream(records, iter(lambda: len(records), None), params),
        "up to 50": stream(records, iter(lambda: int(rng.integers(1, 50)), None), params),
        "up to 700": stream(records, iter(lambda: int(rng.integers(1, 700)), None), params),
    }
    batch = pd.concat(
        [
            score_arrivals(SymbolState(), group, params, flush=True)
            for _, group in records.groupby("symbol")
        ],
        ignore_index=True,
    )
    reference = {(r.symbol, r.minute, r.rules) for r in expected.itertuples()}
    for name, scored in {**runs, "score_batch": batch}.items():
        assert len(scored) == len(records), name  # every record comes out once
        ids = scored[["partition", "offset"]].drop_duplicates()
        assert len(ids) == len(records), name
        reasons = scored["reason"].dropna()
        assert reasons.str.startswith("duplicate").any(), name
        assert not reasons.str.startswith("late").any(), name  # disorder within the lateness
        assert fired(scored) == reference, name
        pd.testing.assert_frame_equal(by_record(scored), by_record(runs["one batch"]))


def test_rejected_records_come_first_in_arrival_order_then_bars_by_minute() -> None:
    times = pd.to_datetime(
        ["2026-02-02 04:02", "2026-02-02 04:02", "2026-02-02 04:01", None, "2026-02-02 04:00"]
    )
    first = pd.Timestamp("2026-02-02 04:00").value // 60_000_000_000
    records = pd.DataFrame(
        {
            "symbol": "AAA",
            "event_time": times,
            "minute": [first + 2, first + 2, first + 1, np.nan, first],
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": [2.0, 1.0, 1.0, np.nan, 1.0],
            "volume": [5.0, 5.0, 5.0, np.nan, 5.0],
            "schema_version": np.int32(1),
            "reason": [None, None, None, "unparsable timestamp", None],
            "raw_value": [None, None, None, "{...}", None],
            "key": "AAA",
            "topic": "bars",
            "partition": np.int32(0),
            "offset": np.arange(5, dtype=np.int64),
            "kafka_timestamp": pd.Timestamp("2026-02-02 04:03:00.123456789"),
        }
    ).iloc[[3, 1, 4, 0, 2]]  # arrival order is (partition, offset), not the frame's
    out = score_arrivals(SymbolState(), records, MarketRuleParams(), flush=True)
    assert out["offset"].tolist() == [1, 3, 4, 2, 0]
    assert out["reason"].tolist() == [
        "duplicate minute: an earlier bar of this symbol and minute was accepted",
        "unparsable timestamp",
        None,
        None,
        None,
    ]
    assert out["raw_value"].tolist() == [None, "{...}", None, None, None]
    assert out["minute"].tolist()[2:] == [first, first + 1, first + 2]
    assert out["close"].tolist()[2:] == [1.0, 1.0, 2.0]  # the first arrival of a minute wins
    assert out["a1"].tolist() == [pd.NA, pd.NA, pd.NA, False, True]
    assert out["kafka_timestamp"].eq(pd.Timestamp("2026-02-02 04:03:00.123456")).all()
    assert list(out.dtypes) == list(SCORED_DTYPES.values())
    keyless = score_arrivals(SymbolState(), records, MarketRuleParams(), keyed=False)
    assert keyless["offset"].tolist() == [0, 1, 2, 3, 4]  # nothing queued without a key
    assert keyless["a1"].isna().all()


FIRST_MINUTE = pd.Timestamp("2026-02-02 04:00").value // 60_000_000_000


def _validated_bars(closes: list[float], volumes: list[float]) -> pd.DataFrame:
    """Symbol AAA's bars from 04:00 on, one a minute, as validation hands them over."""
    n = len(closes)
    return pd.DataFrame(
        {
            "symbol": "AAA",
            "event_time": pd.date_range("2026-02-02 04:00", periods=n, freq="min"),
            "minute": [FIRST_MINUTE + i for i in range(n)],
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": closes,
            "volume": volumes,
            "schema_version": np.int32(1),
            "reason": None,
            "raw_value": None,
            "key": "AAA",
            "topic": "bars",
            "partition": np.int32(0),
            "offset": np.arange(n, dtype=np.int64),
            "kafka_timestamp": pd.Timestamp("2026-02-02 04:05"),
        }
    )


def test_a_bar_the_rules_cannot_take_is_quarantined_and_leaves_the_state_as_it_was() -> None:
    """A volume beyond int64 reached the step as null (validation let it through): it raised."""
    first = FIRST_MINUTE
    # Spark hands a null long over as NaN
    records = _validated_bars([1.0, 1.01, 1.0, 1.2], [5.0, np.nan, 5.0, 5.0])
    state, out = guarded_arrivals(None, records, MarketRuleParams(), flush=True)
    assert sorted(out["offset"]) == [0, 1, 2, 3]
    bad = out[out["offset"] == 1].iloc[0]
    assert bad["reason"] == "incomplete bar: minute, close or volume is null"
    good = out[out["reason"].isna()].sort_values("minute")
    assert good["minute"].tolist() == [first, first + 2, first + 3]
    # minute 1 never reached the state: minute 2 has no previous bar, minute 3 has
    assert good["a1"].tolist() == [pd.NA, pd.NA, True]
    clean = records.drop(index=1)
    expected_state, _ = guarded_arrivals(None, clean, MarketRuleParams(), flush=True)
    assert state.to_json() == expected_state.to_json()


def test_a_batch_the_step_raises_on_is_taken_record_by_record() -> None:
    """Whatever the step raises on, the other records are scored and the state kept."""
    from anomalake.speed.guard import guarded

    def step(state: list[int], part: pd.DataFrame) -> pd.DataFrame:
        if (part["x"] < 0).any():
            raise ValueError("negative")
        state.extend(part["x"])
        return part.assign(reason=None)

    def reject(part: pd.DataFrame, error: BaseException) -> pd.DataFrame:
        return part.assign(reason=str(error))

    records = pd.DataFrame({"x": [1, -1, 2]})
    state, out = guarded(
        "[7]",
        records,
        restore=lambda text: [int(v) for v in text.strip("[]").split(",") if v] if text else [],
        dump=lambda s: "[" + ",".join(map(str, s)) + "]",
        step=step,
        reject=reject,
    )
    assert state == [7, 1, 2]
    assert out["reason"].tolist() == [None, "negative", None]


def test_a_symbol_silent_for_the_ttl_has_its_state_dropped_and_one_heard_from_keeps_it() -> None:
    step = state_function(MarketsStep(MarketRuleParams(), flush_after_ms=2000, ttl_ms=60_000))
    first = FIRST_MINUTE
    bar = _validated_bars([1.0], [5.0])
    state = FakeGroupState()
    list(step(("AAA",), iter([bar]), state))
    assert state.timeout_ms == 2000 and not state.get[0].startswith(IDLE)
    state.hasTimedOut = True  # idle 2 s: the pending bar is flushed, the state kept
    flushed = list(step(("AAA",), iter([]), state))
    assert len(flushed) == 1 and state.exists and state.timeout_ms == 60_000
    # a bar within the ttl: the state is live again, with its history
    state.hasTimedOut = False
    later = bar.assign(minute=[first + 1], offset=np.arange(1, 2, dtype=np.int64))
    later["event_time"] = [pd.Timestamp("2026-02-02 04:01")]
    list(step(("AAA",), iter([later]), state))
    assert not state.get[0].startswith(IDLE)
    assert SymbolState.from_json(state.get[0]).frontier == first
    state.hasTimedOut = True
    list(step(("AAA",), iter([]), state))  # flushed, idle
    list(step(("AAA",), iter([]), state))  # silent for the whole ttl: dropped
    assert not state.exists
