"""Rules A1 and A2 over minute bars, evaluated incrementally per symbol.

The one implementation of the rules: the speed layer calls it from Spark's state store
(``spark.streams.speed`` with ``anomalake.speed.markets``), and batch recomputation and
replay call the same functions.

Definitions (every number is a :class:`MarketRuleParams` field, set from settings):

* A minute is the bar's event time truncated to the minute (UTC epoch minutes).
* **A1** fires when ``|close_t - close_prev| / close_prev > a1_threshold`` (0.5 %), where
  ``prev`` is the bar of the *same symbol at exactly the previous minute*. With no such bar
  — the session's first minute, or a gap (missing or quarantined minute) — A1 is not
  evaluated (``a1`` is null), because "the previous minute" does not exist.
* **A2** fires when ``volume_t > a2_factor x mean(volume over the a2_window minutes before
  t)`` (1.02 x, 10 minutes); minute ``t`` itself is not in the mean. The window is the
  clock minutes ``[t - 10, t - 1]``; A2 is evaluated only when at least ``a2_min_history``
  (10) of them have a bar — so not in a session's first 10 minutes, and not within 10
  minutes after a gap. Otherwise ``a2`` is null.
* **Order and lateness.** Bars of a symbol are evaluated in minute order once they are
  final: when the symbol has seen a bar ``lateness_minutes`` newer (a per-symbol
  event-time watermark), or when the symbol has been idle (the caller flushes). A bar
  whose minute is at or before the last evaluated minute is *late* and is quarantined
  with that reason — it is never silently dropped, and never changes results already
  emitted. Within the lateness, out-of-order bars are put back in order, so results do
  not depend on how bars were split into micro-batches.
* **Duplicates.** The first bar of a (symbol, minute) to arrive wins; a later one is
  quarantined as a duplicate.

The functions take a symbol's bars a batch at a time and are vectorised (no Python per bar):
:func:`accept_bars` queues a frame of bars (or gives each its quarantine reason) and
:func:`evaluate_ready` returns the bars that are final, in minute order, with the rule
columns (:data:`SCORE_COLUMNS`) added; :func:`accept_columns` and :func:`evaluate_columns`
are the same on columns as arrays, for a caller that assembles its own frame (the speed
layer). A bar needs the columns ``minute``, ``close`` and ``volume`` (whole numbers); every
other column is carried through unchanged. The numbers are those of Python's arithmetic on
the bars' floats and integers: the mean volume is the integer sum over the window divided by
the number of bars in it, correctly rounded however large the volumes.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionDtype

if TYPE_CHECKING:
    from anomalake.settings import MarketsSettings

DUPLICATE_REASON = "duplicate minute: an earlier bar of this symbol and minute was accepted"
LATE_REASON = (
    "late: minute arrived after the symbol's watermark had passed it "
    "(last evaluated minute {frontier})"
)
#: The columns :func:`evaluate_ready` adds to the bars it returns.
SCORE_COLUMNS = (
    "prev_close",
    "close_change",
    "a1",
    "mean_volume",
    "volume_ratio",
    "a2",
    "history_minutes",
)
#: The format of :meth:`SymbolState.to_json` (1: history and pending bars as JSON records).
STATE_VERSION = 2
_MASKED = (pd.arrays.IntegerArray, pd.arrays.BooleanArray, pd.arrays.FloatingArray)
#: Columns of bars: name -> a numpy array or pandas extension array, all of one length.
Columns = dict[Any, Any]
# Integers below this convert to float64 exactly, so numpy's arithmetic on them gives what
# Python's int arithmetic (sum of ints, int / int, int > float) gives.
_EXACT = 2**53


@dataclass(frozen=True)
class MarketRuleParams:
    """Thresholds of A1/A2 and the lateness of the per-symbol watermark."""

    a1_threshold: float = 0.005
    a2_factor: float = 1.02
    a2_window_minutes: int = 10
    a2_min_history: int = 10
    lateness_minutes: int = 5


def rule_params(markets: MarketsSettings) -> MarketRuleParams:
    """The rule parameters named in settings (the lateness: the spec's, in whole minutes)."""
    lateness = markets.order.lateness_seconds
    if lateness % 60:
        raise ValueError(
            f"markets.order.lateness_seconds must be whole minutes (the rules count in "
            f"minutes), not {lateness:g}"
        )
    return MarketRuleParams(
        a1_threshold=markets.a1_threshold,
        a2_factor=markets.a2_factor,
        a2_window_minutes=markets.a2_window_minutes,
        a2_min_history=markets.a2_min_history,
        lateness_minutes=int(markets.order.lateness_seconds // 60),
    )


def _no_ints() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


def _no_floats() -> np.ndarray:
    return np.empty(0, dtype=np.float64)


@dataclass(eq=False)
class SymbolState:
    """What the state store keeps per symbol (bounded: a window of history + pending).

    ``minutes``, ``close`` and ``volume`` are the evaluated history (ascending minutes, at
    most the A2 window before the last evaluated minute); ``pending_columns`` the accepted
    bars not yet evaluated, with every column the caller gave them (:attr:`pending` as a
    frame); ``frontier`` the last evaluated minute and ``max_minute`` the newest accepted.
    """

    minutes: np.ndarray = field(default_factory=_no_ints)
    close: np.ndarray = field(default_factory=_no_floats)
    volume: np.ndarray = field(default_factory=_no_ints)
    pending_columns: Columns = field(default_factory=dict)
    frontier: int | None = None
    max_minute: int | None = None

    @property
    def pending(self) -> pd.DataFrame:
        """The accepted bars not yet evaluated, in arrival order (a copy)."""
        return pd.DataFrame(self.pending_columns)

    @property
    def pending_count(self) -> int:
        """How many bars are pending."""
        return row_count(self.pending_columns)

    def to_json(self) -> str:
        """Serialise for the state store (pending rows exactly, with their dtypes)."""
        return json.dumps(
            {
                "v": STATE_VERSION,
                "h": [self.minutes.tolist(), self.close.tolist(), self.volume.tolist()],
                "p": _columns_to_lists(self.pending_columns) if self.pending_count else None,
                "f": self.frontier,
                "x": self.max_minute,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> SymbolState:
        """Restore from :meth:`to_json`."""
        data = json.loads(text)
        if data.get("v") != STATE_VERSION:
            raise ValueError(
                f"symbol state of format {data.get('v', 1)}, not {STATE_VERSION}: "
                "start the query on a new checkpoint"
            )
        minutes, close, volume = data["h"]
        return cls(
            minutes=np.array(minutes, dtype=np.int64),
            close=np.array(close, dtype=np.float64),
            volume=np.array(volume, dtype=np.int64),
            pending_columns={} if data["p"] is None else _columns_from_lists(data["p"]),
            frontier=data["f"],
            max_minute=data["x"],
        )


def row_count(columns: Columns) -> int:
    """How many rows ``columns`` hold."""
    return len(next(iter(columns.values()))) if columns else 0


def _frame_columns(frame: pd.DataFrame) -> Columns:
    """The columns of a frame as arrays (numpy where the dtype is numpy's)."""
    return {
        name: col.to_numpy() if isinstance(col.dtype, np.dtype) else col.array
        for name, col in frame.items()
    }


def _columns_to_lists(columns: Columns) -> list[list[Any]]:
    """``[[name, dtype, values], ...]``: JSON-safe and exact.

    Floats keep every bit through JSON (``repr``; NaN as ``NaN``), datetimes travel as
    integers of their unit, nullable columns with ``None`` for ``<NA>``.
    """
    out = []
    for name, array in columns.items():
        dtype = array.dtype
        values: list[Any]
        if isinstance(dtype, pd.DatetimeTZDtype):
            naive = pd.Series(array).dt.tz_convert(None).to_numpy()
            values = naive.view(np.int64).tolist()
        elif isinstance(dtype, np.dtype) and dtype.kind in "mM":
            values = array.view(np.int64).tolist()
        elif isinstance(dtype, np.dtype):
            values = array.tolist()
        elif isinstance(array, _MASKED):
            missing = array.isna()
            values = array.to_numpy(dtype=dtype.numpy_dtype, na_value=0).tolist()
            values = [None if m else v for v, m in zip(values, missing, strict=True)]
        else:
            values = [None if v is pd.NA else v for v in array.tolist()]
        out.append([name, str(dtype), values])
    return out


@functools.cache
def _dtype(text: str) -> Any:
    return pd.api.types.pandas_dtype(text)


def _columns_from_lists(lists: list[list[Any]]) -> Columns:
    """The columns of :func:`_columns_to_lists`."""
    columns: Columns = {}
    for name, dtype_text, values in lists:
        dtype = _dtype(dtype_text)
        array_type = dtype.construct_array_type() if isinstance(dtype, ExtensionDtype) else None
        if array_type is not None and issubclass(array_type, _MASKED):  # Int64, boolean, ...
            mask = np.array([v is None for v in values], dtype=bool)
            filled = [0 if v is None else v for v in values] if mask.any() else values
            columns[name] = array_type(np.array(filled, dtype=dtype.numpy_dtype), mask)
        elif isinstance(dtype, pd.DatetimeTZDtype):
            naive = np.array(values, dtype=np.int64).view(f"datetime64[{dtype.unit}]")
            columns[name] = pd.Series(naive).dt.tz_localize("UTC").dt.tz_convert(dtype.tz).array
        elif isinstance(dtype, np.dtype) and dtype.kind in "mM":
            columns[name] = np.array(values, dtype=np.int64).view(dtype)
        elif isinstance(dtype, np.dtype) and dtype.kind == "O":
            columns[name] = np.empty(len(values), dtype=object)
            columns[name][:] = values
        elif isinstance(dtype, np.dtype):
            columns[name] = np.array(values, dtype=dtype)
        else:
            columns[name] = pd.array(values, dtype=dtype)
    return columns


def concat_columns(parts: list[Columns]) -> Columns:
    """The rows of ``parts`` one after the other (as ``pandas.concat`` would put them)."""
    first = parts[0]
    same = all(
        list(p) == list(first) and all(p[k].dtype == first[k].dtype for k in first)
        for p in parts[1:]
    )
    if not same:
        frames = [pd.DataFrame(p) for p in parts]
        return _frame_columns(pd.concat(frames, ignore_index=True))
    out: Columns = {}
    for name, array in first.items():
        arrays = [p[name] for p in parts]
        if isinstance(array, np.ndarray):
            out[name] = np.concatenate(arrays)
        else:
            out[name] = type(array)._concat_same_type(arrays)
    return out


def accept_bars(state: SymbolState, bars: pd.DataFrame) -> pd.Series:
    """Queue a symbol's bars (rows in arrival order); the quarantine reason of each, or None.

    A bar is a duplicate when its minute is in the history or pending, or an earlier row of
    ``bars`` was accepted with it; otherwise late when its minute is at or before the last
    evaluated one. The other bars join the pending ones.
    """
    reasons = accept_columns(state, _frame_columns(bars))
    return pd.Series(reasons, index=bars.index, dtype=object)


def accept_columns(state: SymbolState, bars: Columns) -> np.ndarray:
    """:func:`accept_bars` of bars given as columns; the reasons as an object array."""
    n = row_count(bars)
    reasons = np.full(n, None, dtype=object)
    if n == 0:
        return reasons
    minutes = np.asarray(bars["minute"], dtype=np.int64)
    known = np.isin(minutes, state.minutes)
    if state.pending_count:
        known |= np.isin(minutes, np.asarray(state.pending_columns["minute"], dtype=np.int64))
    repeated = np.ones(n, dtype=bool)
    repeated[np.unique(minutes, return_index=True)[1]] = False
    passed = np.zeros(n, dtype=bool) if state.frontier is None else minutes <= state.frontier
    # The first row of a minute that is neither known nor passed is accepted, so a later row
    # of it is a duplicate; a later row of a passed minute is late like its first one.
    duplicate = known | (repeated & ~passed)
    late = passed & ~duplicate
    reasons[duplicate] = DUPLICATE_REASON
    reasons[late] = LATE_REASON.format(frontier=state.frontier)
    accepted = ~(duplicate | late)
    if accepted.any():
        new = {name: array[accepted] for name, array in bars.items()}  # copies
        state.pending_columns = (
            concat_columns([state.pending_columns, new]) if state.pending_count else new
        )
        newest = int(minutes[accepted].max())
        state.max_minute = newest if state.max_minute is None else max(state.max_minute, newest)
    return reasons


def evaluate_ready(
    state: SymbolState, params: MarketRuleParams, flush: bool = False
) -> pd.DataFrame:
    """Evaluate the pending bars that are final (all when ``flush``); returns them scored.

    The bars come out in minute order with their columns and :data:`SCORE_COLUMNS`:
    ``prev_close``, ``close_change``, ``mean_volume``, ``volume_ratio`` (floats, NaN when not
    computed), ``a1``, ``a2`` (nullable booleans, ``<NA>`` when not evaluated) and
    ``history_minutes`` (bars in the A2 window). They move to the history.
    """
    return pd.DataFrame(evaluate_columns(state, params, flush))


def evaluate_columns(state: SymbolState, params: MarketRuleParams, flush: bool = False) -> Columns:
    """:func:`evaluate_ready` with the scored bars as columns."""
    pending = state.pending_columns
    if not state.pending_count:
        return _scored(pending, _no_ints(), *_no_scores())
    pending_minutes = np.asarray(pending["minute"], dtype=np.int64)
    if flush:
        is_ready = np.ones(len(pending_minutes), dtype=bool)
    else:
        assert state.max_minute is not None
        is_ready = pending_minutes <= state.max_minute - params.lateness_minutes
    if not is_ready.any():
        return _scored(pending, _no_ints(), *_no_scores())
    take = np.flatnonzero(is_ready)
    minutes = pending_minutes[take]
    if (np.diff(minutes) < 0).any():
        order = np.argsort(minutes, kind="stable")
        take, minutes = take[order], minutes[order]
    close = np.asarray(pending["close"], dtype=np.float64)[take]
    volume = np.asarray(pending["volume"], dtype=np.int64)[take]

    # History and ready bars in one ascending run (every history minute is at or before the
    # frontier, every pending one after it): ready bar i is at len(history) + i.
    all_minutes = np.concatenate([state.minutes, minutes])
    all_close = np.concatenate([state.close, close])
    all_volume = np.concatenate([state.volume, volume])
    position = len(state.minutes) + np.arange(len(minutes))
    scores = _scores(all_minutes, all_close, all_volume, position, params)

    keep = all_minutes >= minutes[-1] - params.a2_window_minutes
    state.minutes, state.close, state.volume = all_minutes[keep], all_close[keep], all_volume[keep]
    state.frontier = int(minutes[-1])
    state.pending_columns = {name: array[~is_ready] for name, array in pending.items()}
    return _scored(pending, take, *scores)


def _scores(
    minutes: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    position: np.ndarray,
    params: MarketRuleParams,
) -> tuple[np.ndarray, ...]:
    """A1/A2 of the bars at ``position`` of the ascending run ``minutes`` (their history)."""
    n = len(position)
    has_prev = np.zeros(n, dtype=bool)
    after = position > 0
    has_prev[after] = minutes[position[after] - 1] == minutes[position[after]] - 1
    prev_close = np.full(n, np.nan)
    prev_close[has_prev] = close[position[has_prev] - 1]
    on_a1 = has_prev & (prev_close != 0)  # as Python's "if prev_close" (NaN is truthy)
    own_close, own_volume = close[position], volume[position]
    with np.errstate(divide="ignore", invalid="ignore"):
        close_change = np.where(on_a1, np.abs(own_close - prev_close) / prev_close, np.nan)
        a1 = close_change > params.a1_threshold

        # The window [t - w, t - 1] is positions [start, position): the run is ascending.
        start = np.searchsorted(minutes, minutes[position] - params.a2_window_minutes)
        count = position - start
        on_a2 = count >= params.a2_min_history
        # A cumulative sum that wraps around int64 still gives exact differences.
        cumulative = np.concatenate([[0], np.cumsum(volume)])
        window_sum = cumulative[position] - cumulative[start]
        mean_volume = np.where(on_a2, window_sum / count, np.nan)
        on_ratio = on_a2 & (mean_volume != 0)
        volume_ratio = np.where(on_ratio, own_volume / mean_volume, np.nan)
        a2 = own_volume > params.a2_factor * mean_volume
    limit = _EXACT // max(params.a2_window_minutes, 1)
    if len(volume) and (volume.max() >= limit or volume.min() <= -limit):
        for i in np.flatnonzero(on_a2):  # beyond float64's integers: Python's int arithmetic
            window = [int(v) for v in volume[start[i] : position[i]]]
            mean = sum(window) / len(window)
            own = int(own_volume[i])
            mean_volume[i] = mean
            volume_ratio[i] = own / mean if mean else np.nan
            a2[i] = own > params.a2_factor * mean
    return (
        prev_close,
        close_change,
        pd.arrays.BooleanArray(a1, ~on_a1),
        mean_volume,
        volume_ratio,
        pd.arrays.BooleanArray(a2, ~on_a2),
        count.astype(np.int64),
    )


def _no_scores() -> tuple[Any, ...]:
    nothing = np.empty(0, dtype=bool)
    return (
        _no_floats(),
        _no_floats(),
        pd.arrays.BooleanArray(nothing, nothing),
        _no_floats(),
        _no_floats(),
        pd.arrays.BooleanArray(nothing, nothing),
        _no_ints(),
    )


def _scored(bars: Columns, take: np.ndarray, *scores: Any) -> Columns:
    """Rows ``take`` of ``bars`` with the :data:`SCORE_COLUMNS` appended."""
    out = {name: array[take] for name, array in bars.items()}
    out.update(zip(SCORE_COLUMNS, scores, strict=True))
    return out
