"""Rules A1 and A2 over minute bars, evaluated incrementally per symbol.

The one implementation of the rules: the speed layer calls it from Spark's state store
(``spark.streams.markets``), and batch recomputation and replay call the same functions.

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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Bar = dict[str, Any]


@dataclass(frozen=True)
class MarketRuleParams:
    """Thresholds of A1/A2 and the lateness of the per-symbol watermark."""

    a1_threshold: float = 0.005
    a2_factor: float = 1.02
    a2_window_minutes: int = 10
    a2_min_history: int = 10
    lateness_minutes: int = 5


@dataclass
class SymbolState:
    """What the state store keeps per symbol (bounded: a window of history + pending)."""

    history: dict[int, tuple[float, int]] = field(default_factory=dict)
    pending: dict[int, Bar] = field(default_factory=dict)
    frontier: int | None = None
    max_minute: int | None = None

    def to_json(self) -> str:
        """Serialise for the state store."""
        return json.dumps(
            {
                "h": [[m, c, v] for m, (c, v) in self.history.items()],
                "p": list(self.pending.values()),
                "f": self.frontier,
                "x": self.max_minute,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> SymbolState:
        """Restore from :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            history={int(m): (float(c), int(v)) for m, c, v in data["h"]},
            pending={int(b["minute"]): b for b in data["p"]},
            frontier=data["f"],
            max_minute=data["x"],
        )


def accept(state: SymbolState, bar: Bar) -> str | None:
    """Queue a valid bar for evaluation; returns a quarantine reason if it cannot be."""
    minute = int(bar["minute"])
    if minute in state.pending or minute in state.history:
        return "duplicate minute: an earlier bar of this symbol and minute was accepted"
    if state.frontier is not None and minute <= state.frontier:
        return (
            f"late: minute arrived after the symbol's watermark had passed it "
            f"(last evaluated minute {state.frontier})"
        )
    state.pending[minute] = bar
    state.max_minute = minute if state.max_minute is None else max(state.max_minute, minute)
    return None


def score(
    history: dict[int, tuple[float, int]],
    minute: int,
    close: float,
    volume: int,
    params: MarketRuleParams,
) -> dict[str, Any]:
    """A1/A2 of one bar given the symbol's evaluated history (pure)."""
    prev = history.get(minute - 1)
    prev_close = prev[0] if prev else None
    close_change = abs(close - prev_close) / prev_close if prev_close else None
    window = [
        history[m][1] for m in range(minute - params.a2_window_minutes, minute) if m in history
    ]
    mean_volume = sum(window) / len(window) if len(window) >= params.a2_min_history else None
    return {
        "prev_close": prev_close,
        "close_change": close_change,
        "a1": None if close_change is None else close_change > params.a1_threshold,
        "mean_volume": mean_volume,
        "volume_ratio": volume / mean_volume if mean_volume else None,
        "a2": None if mean_volume is None else volume > params.a2_factor * mean_volume,
        "history_minutes": len(window),
    }


def evaluate_ready(state: SymbolState, params: MarketRuleParams, flush: bool = False) -> list[Bar]:
    """Evaluate, in minute order, the pending bars that are final; returns them scored."""
    if not state.pending:
        return []
    assert state.max_minute is not None
    limit = state.max_minute if flush else state.max_minute - params.lateness_minutes
    ready = sorted(m for m in state.pending if m <= limit)
    out = []
    for minute in ready:
        bar = state.pending.pop(minute)
        scored = {**bar, **score(state.history, minute, bar["close"], bar["volume"], params)}
        state.history[minute] = (float(bar["close"]), int(bar["volume"]))
        state.frontier = minute
        out.append(scored)
    if ready:
        oldest = ready[-1] - params.a2_window_minutes
        state.history = {m: cv for m, cv in state.history.items() if m >= oldest}
    return out


def fired_rules(bar: Bar) -> list[str]:
    """Names of the rules that fired on a scored bar."""
    return [name for name in ("A1", "A2") if bar.get(name.lower())]
