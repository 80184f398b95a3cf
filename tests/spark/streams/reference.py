"""An independent pandas computation of A1/A2 over export files, for comparison.

Written from the rule definitions, vectorised over a minute grid, sharing no code with
``anomalake.detection.markets``: filter invalid rows, keep the first row of each
(symbol, minute) in file order, then per symbol: A1 against the bar at minute - 1, A2
against the mean volume of
minutes [t - 10, t - 1] when all ten have a bar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anomalake.loaders.markets import load_bars


def valid_bars(path: Path) -> pd.DataFrame:
    """Rows that are bars: parseable time, finite positive prices, whole non-negative volume."""
    bars = load_bars(path)
    prices = bars[["open", "high", "low", "close"]]
    ok = (
        bars["timestamp"].notna()
        & np.isfinite(prices).all(axis=1)
        & (prices > 0).all(axis=1)
        & bars["volume"].notna()
        & (bars["volume"] >= 0)
        & (bars["volume"] == np.floor(bars["volume"]))
    )
    valid = bars[ok].copy()
    valid["minute"] = (valid["timestamp"].astype("int64") // 60_000_000_000).astype("int64")
    return valid.drop_duplicates(["symbol", "minute"], keep="first")


def reference_anomalies(
    path: Path, a1: float = 0.005, factor: float = 1.02, window: int = 10
) -> pd.DataFrame:
    """``symbol, minute, rules`` of every bar on which A1 or A2 fires."""
    out = []
    for symbol, group in valid_bars(path).groupby("symbol"):
        s = group.set_index("minute").sort_index()
        grid = s.reindex(range(int(s.index.min()), int(s.index.max()) + 1))
        prev_close = grid["close"].shift(1)
        change = (grid["close"] - prev_close).abs() / prev_close
        mean_volume = grid["volume"].shift(1).rolling(window, min_periods=window).mean()
        fired_a1 = change > a1  # NaN (no previous minute) compares False
        fired_a2 = grid["volume"] > factor * mean_volume
        for minute in grid.index[(fired_a1 | fired_a2) & grid["close"].notna()]:
            rules = [r for r, f in (("A1", fired_a1[minute]), ("A2", fired_a2[minute])) if f]
            out.append({"symbol": symbol, "minute": int(minute), "rules": ",".join(rules)})
    return pd.DataFrame(out, columns=["symbol", "minute", "rules"])
