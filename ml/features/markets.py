"""Features of minute bars for the markets anomaly detector: pure pandas, frame in, frame out.

:func:`bar_features` takes raw bars (loader rows, the same fields from the stream's validated
records, or a replay; extra columns are ignored) and returns one row of features per input
row, in the input's order and with its index. Nothing is fitted, so training, the stream and
a replay compute exactly the same numbers, and a model whose pipeline starts with this
function takes raw bars. The order of the rows does not matter, except that of two bars of
one symbol and minute the earlier one in the frame is the one kept as history.

Per symbol, in minute order, with the definitions of rules A1/A2
(:mod:`anomalake.detection.markets`):

* A bar's minute is its timestamp truncated to the UTC epoch minute (naive timestamps are
  taken as UTC). A bar is *valid* when it has a symbol and a timestamp, positive finite
  ``open, high, low, close`` and a non-negative whole ``volume`` -- the bars the speed layer
  does not quarantine. The history of a symbol is its valid bars, the first of each minute
  in frame order (a later duplicate is scored, but never serves as history).
* ``log_return``: ``ln(close_t / close_prev)`` where ``prev`` is the bar of the same symbol
  at exactly the previous minute; ``abs_return``: ``|close_t - close_prev| / close_prev``,
  the quantity A1 compares with its threshold. Both are missing at a session's first minute
  and after a gap, as A1 is.
* ``volume_ratio``: ``volume_t / mean(volume of the bars in the clock minutes
  [t - 10, t - 1])``, the quantity A2 compares with its factor; missing unless all of those
  ``min_history`` (10) minutes have a bar -- so in the first 10 minutes of every session
  (the warm-up) and for 10 minutes after a gap -- or when that mean is 0.
  ``log_volume_ratio``: ``ln((volume_t + 1) / (mean + 1))``, smoothed so that a zero volume
  stays finite (for ordinary volumes it is ``ln(volume_ratio)`` to within a thousandth).
* ``range``: ``(high - low) / close``, the bar's own spread; needs no history.

Missing values are imputed with "nothing unusual": 0 for ``log_return``, ``abs_return``,
``log_volume_ratio`` and ``range``, 1 for ``volume_ratio``. ``has_return`` and
``has_volume_ratio`` (1.0 / 0.0) say whether the value was computed. An invalid bar gets
the imputed values throughout and both indicators 0 (the stream quarantines such bars
before any model sees them).

The features of a bar depend on the bars of its symbol in the 10 minutes before it, so a
caller scoring new bars must pass those too (the stream keeps exactly that window per
symbol) and keep the scores of the new rows; a bar without its history is scored as a
warm-up bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from anomalake.detection.markets import MarketRuleParams
from anomalake.errors import AnomalakeError

_RULES = MarketRuleParams()
WINDOW_MINUTES = _RULES.a2_window_minutes
MIN_HISTORY = _RULES.a2_min_history
BAR_INPUTS: tuple[str, ...] = ("symbol", "timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
FEATURE_COLUMNS: tuple[str, ...] = (
    "log_return",
    "abs_return",
    "volume_ratio",
    "log_volume_ratio",
    "range",
    "has_return",
    "has_volume_ratio",
)
# "Nothing unusual" for a feature that cannot be computed.
IMPUTED: dict[str, float] = {
    "log_return": 0.0,
    "abs_return": 0.0,
    "volume_ratio": 1.0,
    "log_volume_ratio": 0.0,
    "range": 0.0,
}


def epoch_minutes(timestamps: pd.Series) -> pd.Series:
    """UTC epoch minutes of timestamps (datetimes or ISO text); ``<NA>`` where unparsable.

    Naive timestamps are taken as UTC, as the loader's are.
    """
    if pd.api.types.is_datetime64_any_dtype(timestamps):
        ts = pd.to_datetime(timestamps, utc=True)
    else:
        ts = pd.to_datetime(timestamps, errors="coerce", utc=True, format="ISO8601")
    ns = ts.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    minutes = pd.Series(np.floor_divide(ns, 60_000_000_000), index=timestamps.index)
    return minutes.astype("Int64").mask(ts.isna().to_numpy())


def valid_bars(bars: pd.DataFrame) -> pd.Series:
    """``True`` for the bars the speed layer accepts (see the module docstring)."""
    ok = bars["symbol"].notna() & epoch_minutes(bars["timestamp"]).notna()
    for col in PRICE_COLUMNS:
        price = pd.to_numeric(bars[col], errors="coerce")
        ok &= np.isfinite(price) & (price > 0)
    volume = pd.to_numeric(bars["volume"], errors="coerce")
    ok &= np.isfinite(volume) & (volume >= 0) & (volume == np.floor(volume))
    return ok.fillna(False).astype(bool)


def bar_features(
    bars: pd.DataFrame,
    *,
    window_minutes: int = WINDOW_MINUTES,
    min_history: int = MIN_HISTORY,
) -> pd.DataFrame:
    """Features of each bar from its symbol's previous minutes (see the module docstring).

    Args:
        bars: raw bars with at least :data:`BAR_INPUTS` (any order, any extra columns).
        window_minutes: clock minutes before a bar whose mean volume ``volume_ratio`` uses.
        min_history: bars needed in that window for ``volume_ratio``.

    Returns:
        :data:`FEATURE_COLUMNS` as floats, one row per input row, with the input's index.

    Raises:
        AnomalakeError: a column of :data:`BAR_INPUTS` is missing.
    """
    missing = [c for c in BAR_INPUTS if c not in bars.columns]
    if missing:
        raise AnomalakeError(
            f"the bars lack columns {missing}",
            f"pass minute bars with {', '.join(BAR_INPUTS)} (as load_bars returns them)",
        )
    valid = valid_bars(bars).to_numpy()
    codes = pd.factorize(bars["symbol"])[0].astype(np.int64)
    minute = epoch_minutes(bars["timestamp"]).to_numpy(dtype=np.float64, na_value=np.nan)
    close, high, low, volume = (
        pd.to_numeric(bars[c], errors="coerce").to_numpy(dtype=np.float64)
        for c in ("close", "high", "low", "volume")
    )
    prev_close, mean_volume = _history(
        valid, codes, minute, close, volume, window_minutes, min_history
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        log_return = np.log(close / prev_close)
        abs_return = np.abs(close - prev_close) / prev_close
        volume_ratio = volume / mean_volume
        log_volume_ratio = np.log((volume + 1.0) / (mean_volume + 1.0))
        spread = np.where(valid, (high - low) / close, np.nan)

    out = pd.DataFrame(
        {
            "log_return": log_return,
            "abs_return": abs_return,
            "volume_ratio": volume_ratio,
            "log_volume_ratio": log_volume_ratio,
            "range": spread,
        },
        index=bars.index,
    )
    out["has_return"] = out["log_return"].notna().astype(float)
    out["has_volume_ratio"] = out["volume_ratio"].notna().astype(float)
    return out.fillna(IMPUTED)[list(FEATURE_COLUMNS)]


def _history(
    valid: np.ndarray,
    codes: np.ndarray,
    minute: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    window_minutes: int,
    min_history: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the previous minute's close and the window's mean volume (NaN if undefined).

    The history is the first valid bar of each (symbol, minute) in frame order; both values
    are NaN for invalid rows, and the mean is NaN with fewer than ``min_history`` bars in the
    window or when it is 0.
    """
    n = len(valid)
    prev_close = np.full(n, np.nan)
    mean_volume = np.full(n, np.nan)
    if not valid.any():
        return prev_close, mean_volume
    # (symbol, minute) as one sortable integer: minutes relative to the earliest, shifted by
    # the window so that "window minutes before" stays inside the symbol's block of keys.
    first = np.nanmin(minute[valid])
    relative = np.where(valid, minute - first, 0).astype(np.int64) + window_minutes + 1
    keys = codes * (int(relative.max()) + 1) + relative
    rows = np.flatnonzero(valid)
    _, first_of_minute = np.unique(keys[rows], return_index=True)  # earliest row per key
    history = rows[first_of_minute]  # ordered by key
    hist_keys = keys[history]

    # The bar of exactly the previous minute.
    pos = np.minimum(np.searchsorted(hist_keys, keys - 1), len(history) - 1)
    has_prev = valid & (hist_keys[pos] == keys - 1)
    prev_close[has_prev] = close[history[pos[has_prev]]]

    # The bars of the clock minutes [t - window, t - 1].
    cumulative = np.concatenate([[0.0], np.cumsum(volume[history])])
    hi = np.searchsorted(hist_keys, keys, side="left")
    lo = np.searchsorted(hist_keys, keys - window_minutes, side="left")
    count = hi - lo
    total = cumulative[hi] - cumulative[lo]
    has_mean = valid & (count >= min_history) & (total > 0)
    mean_volume[has_mean] = total[has_mean] / count[has_mean]
    return prev_close, mean_volume
