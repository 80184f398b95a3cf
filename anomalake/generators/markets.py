"""Synthetic minute OHLCV bars per symbol, shaped like a common exchange export.

One CSV per symbol named like ``SYM000__EQ__NSE__NSE__MINUTE.csv`` with columns
``timestamp, open, high, low, close, volume``; one session per trading day (business days
less exchange holidays) from 09:15 to 15:29 exchange-local time (375 minutes).

* prices: a geometric random walk whose volatility switches between calm and turbulent
  regimes (a two-state Markov chain);
* volumes: heavy-tailed (log-normal with occasional Pareto bursts) on a U-shaped
  intraday profile;
* injected anomalies, written to ``labels.csv`` (``symbol, timestamp, kind``): price jumps
  (the close moves 0.8–2.5 % from the previous minute) and volume spikes (4–12 x);
* optional faults that real exports have, written to ``faults.csv``: malformed rows (bad
  numbers, missing fields, non-positive prices, negative volumes, unparsable timestamps),
  duplicated minutes, locally unsorted timestamps (a minute moved up to
  ``max_disorder`` rows later) and gaps (missing minutes).

Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from anomalake.loaders.markets import EXCHANGE_TIMEZONE

EXCHANGE_TZ = ZoneInfo(EXCHANGE_TIMEZONE)
SESSION_OPEN = time(9, 15)
SESSION_MINUTES = 375  # 09:15 .. 15:29 inclusive
BAR_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
FILE_SUFFIX = "__EQ__NSE__NSE__MINUTE.csv"
# Fixed-date exchange holidays (month, day); moving feasts are not modelled.
HOLIDAYS = {(1, 26), (5, 1), (8, 15), (10, 2), (12, 25)}


@dataclass(frozen=True)
class FaultRates:
    """Per-row probabilities of each fault (0 disables it)."""

    malformed: float = 0.004
    duplicate: float = 0.004
    unsorted: float = 0.004
    gap: float = 0.004
    max_disorder: int = 3


NO_FAULTS = FaultRates(0.0, 0.0, 0.0, 0.0)


def trading_days(start: date, days: int) -> list[date]:
    """``days`` trading days from ``start``: business days that are not holidays."""
    out: list[date] = []
    day = start
    while len(out) < days:
        if day.weekday() < 5 and (day.month, day.day) not in HOLIDAYS:
            out.append(day)
        day += timedelta(days=1)
    return out


def trading_minutes(start: date, days: int) -> pd.DatetimeIndex:
    """Exchange-local minute timestamps of ``days`` trading days from ``start``."""
    stamps = [
        datetime.combine(day, SESSION_OPEN, EXCHANGE_TZ) + timedelta(minutes=m)
        for day in trading_days(start, days)
        for m in range(SESSION_MINUTES)
    ]
    return pd.DatetimeIndex(stamps)


def symbol_names(n: int) -> list[str]:
    """``n`` distinct ticker-like names (``SYM000``...)."""
    return [f"SYM{i:03d}" for i in range(n)]


def _rng(seed: int, symbol: str, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, salt, *map(ord, symbol)])


def generate_bars(
    symbol: str,
    start: date,
    days: int,
    seed: int = 0,
    start_price: float = 100.0,
    anomaly_rate: float = 0.002,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean minute bars of one symbol and the labels of the anomalies injected in them.

    Returns ``(bars, labels)``: bars with ``symbol`` and :data:`BAR_COLUMNS` (timestamps
    tz-aware, exchange-local), labels with ``symbol, timestamp, kind``.
    """
    rng = _rng(seed, symbol)
    index = trading_minutes(start, days)
    n = len(index)
    # Two-state volatility regime, switching rarely.
    regime = np.zeros(n, dtype=np.int8)
    for i in range(1, n):
        stay = 0.995 if regime[i - 1] == 0 else 0.98
        regime[i] = regime[i - 1] if rng.random() < stay else 1 - regime[i - 1]
    sigma = np.where(regime == 0, 0.0006, 0.0015)
    log_returns = rng.normal(0.0, 1.0, n) * sigma
    jumps = rng.random(n) < anomaly_rate
    jumps[0] = False
    log_returns[jumps] = rng.choice([-1.0, 1.0], jumps.sum()) * rng.uniform(
        0.008, 0.025, jumps.sum()
    )
    close = start_price * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[start_price], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.0005, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    minute_of_day = np.arange(n) % SESSION_MINUTES
    u_shape = 1.0 + 1.5 * ((minute_of_day - SESSION_MINUTES / 2) / (SESSION_MINUTES / 2)) ** 2
    base = rng.lognormal(mean=7.0, sigma=0.5, size=n)
    bursts = rng.random(n) < 0.01
    base[bursts] *= 1.0 + rng.pareto(3.0, bursts.sum())
    spikes = rng.random(n) < anomaly_rate
    base[spikes] *= rng.uniform(4.0, 12.0, spikes.sum())
    volume = np.maximum(1, np.round(base * u_shape)).astype(np.int64)
    bars = pd.DataFrame(
        {
            "symbol": symbol,
            "timestamp": index,
            "open": open_.round(2),
            "high": high.round(2),
            "low": low.round(2),
            "close": close.round(2),
            "volume": volume,
        }
    )
    labels = pd.concat(
        [
            pd.DataFrame({"symbol": symbol, "timestamp": index[jumps], "kind": "price_jump"}),
            pd.DataFrame({"symbol": symbol, "timestamp": index[spikes], "kind": "volume_spike"}),
        ]
    ).sort_values("timestamp", kind="stable")
    return bars, labels.reset_index(drop=True)


def format_timestamp(ts: pd.Timestamp) -> str:
    """The export's timestamp text, e.g. ``2026-01-05 09:15:00+05:30``."""
    return ts.isoformat(sep=" ")


def _bar_row(bar: pd.Series) -> list[str]:
    return [
        format_timestamp(bar["timestamp"]),
        *(f"{bar[c]:.2f}" for c in BAR_COLUMNS[1:5]),
        str(int(bar["volume"])),
    ]


MALFORMATIONS = (
    ("bad number", lambda r: [r[0], r[1], r[2], r[3], "n/a", r[5]]),
    ("missing field", lambda r: r[:5]),
    ("non-positive price", lambda r: [r[0], r[1], r[2], r[3], "0.00", r[5]]),
    ("negative volume", lambda r: [*r[:5], "-" + r[5]]),
    ("unparsable timestamp", lambda r: ["2026-13-45 99:99:00", *r[1:]]),
    ("NaN price", lambda r: [r[0], r[1], r[2], r[3], "NaN", r[5]]),
)


def with_faults(
    bars: pd.DataFrame, rates: FaultRates, seed: int = 0
) -> tuple[list[list[str]], list[dict[str, str]]]:
    """Turn clean bars into export rows with faults; returns ``(rows, fault log)``."""
    symbol = str(bars["symbol"].iloc[0]) if len(bars) else ""
    rng = _rng(seed, symbol, salt=1)
    rows: list[list[str]] = []
    faults: list[dict[str, str]] = []
    for _, bar in bars.iterrows():
        row = _bar_row(bar)
        draw = rng.random(4)
        if draw[0] < rates.gap:
            faults.append({"symbol": symbol, "timestamp": row[0], "fault": "gap"})
            continue
        if draw[1] < rates.malformed:
            kind, damage = MALFORMATIONS[int(rng.integers(len(MALFORMATIONS)))]
            faults.append({"symbol": symbol, "timestamp": row[0], "fault": f"malformed: {kind}"})
            row = damage(row)
        rows.append(row)
        if draw[2] < rates.duplicate:
            faults.append({"symbol": symbol, "timestamp": row[0], "fault": "duplicate"})
            rows.append(list(row))
    # Local disorder: move a row up to max_disorder positions later.
    i = 0
    while i < len(rows) - 1:
        if rng.random() < rates.unsorted:
            shift = int(rng.integers(1, rates.max_disorder + 1))
            j = min(i + shift, len(rows) - 1)
            moved = rows.pop(i)
            rows.insert(j, moved)
            faults.append({"symbol": symbol, "timestamp": moved[0], "fault": f"moved +{j - i}"})
            i = j + 1
        else:
            i += 1
    return rows, faults


def write_market_files(
    out_dir: Path,
    n_symbols: int,
    start: date,
    days: int,
    seed: int = 0,
    faults: FaultRates = NO_FAULTS,
    anomaly_rate: float = 0.002,
) -> list[Path]:
    """Write one export file per symbol plus ``labels.csv`` and ``faults.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, all_labels, all_faults = [], [], []
    for k, symbol in enumerate(symbol_names(n_symbols)):
        bars, labels = generate_bars(
            symbol, start, days, seed=seed, start_price=50.0 + 25 * k, anomaly_rate=anomaly_rate
        )
        rows, log = with_faults(bars, faults, seed=seed)
        path = out_dir / f"{symbol}{FILE_SUFFIX}"
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(BAR_COLUMNS)
            writer.writerows(rows)
        paths.append(path)
        all_labels.append(labels.assign(timestamp=labels["timestamp"].map(format_timestamp)))
        all_faults.extend(log)
    pd.concat(all_labels).to_csv(out_dir / "labels.csv", index=False)
    pd.DataFrame(all_faults, columns=["symbol", "timestamp", "fault"]).to_csv(
        out_dir / "faults.csv", index=False
    )
    return paths


def generate(out: Path, entities: int, hours: float, seed: int, faults: bool) -> str:
    """The use case's generator (``anomalake generate markets``): ``entities`` symbols.

    ``hours`` of trading are rounded up to whole sessions of 6.25 h, from 2026-01-05.
    """
    days = max(1, math.ceil(hours * 60 / SESSION_MINUTES))
    paths = write_market_files(
        out,
        entities,
        date(2026, 1, 5),
        days,
        seed=seed,
        faults=FaultRates() if faults else NO_FAULTS,
    )
    return (
        f"wrote {len(paths)} files ({days} trading days each), labels.csv and faults.csv to {out}"
    )
