"""Synthetic minute OHLCV bars per symbol, shaped like a common exchange export.

Columns ``timestamp, open, high, low, close, volume``; one trading session per business
day from 09:15 to 15:29 exchange-local time (375 minutes). Prices follow a geometric
random walk; volumes are heavy-tailed (log-normal) with a U-shaped intraday profile.
Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

EXCHANGE_TZ = ZoneInfo("Asia/Kolkata")
SESSION_OPEN = time(9, 15)
SESSION_MINUTES = 375  # 09:15 .. 15:29 inclusive
BAR_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]


def trading_minutes(start: date, days: int) -> pd.DatetimeIndex:
    """Exchange-local minute timestamps of ``days`` business days from ``start``."""
    sessions = pd.bdate_range(start, periods=days)
    stamps = [
        datetime.combine(day.date(), SESSION_OPEN, EXCHANGE_TZ) + timedelta(minutes=m)
        for day in sessions
        for m in range(SESSION_MINUTES)
    ]
    return pd.DatetimeIndex(stamps)


def symbol_names(n: int) -> list[str]:
    """``n`` distinct ticker-like names (``SYM000``...)."""
    return [f"SYM{i:03d}" for i in range(n)]


def generate_bars(
    symbol: str, start: date, days: int, seed: int = 0, start_price: float = 100.0
) -> pd.DataFrame:
    """Minute bars of one symbol: a DataFrame with :data:`BAR_COLUMNS` plus ``symbol``."""
    rng = np.random.default_rng([seed, sum(map(ord, symbol))])
    index = trading_minutes(start, days)
    n = len(index)
    log_returns = rng.normal(0.0, 0.0012, n)
    close = start_price * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[start_price], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.0008, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    minute_of_day = np.arange(n) % SESSION_MINUTES
    u_shape = 1.0 + 1.5 * ((minute_of_day - SESSION_MINUTES / 2) / (SESSION_MINUTES / 2)) ** 2
    volume = np.round(rng.lognormal(mean=7.0, sigma=0.6, size=n) * u_shape).astype(np.int64)
    return pd.DataFrame(
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
