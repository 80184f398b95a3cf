"""Gold views of the markets silver table: daily summary, statistics, histograms, rolling means.

Transforms take DataFrames and return DataFrames; the ``build_*`` functions are the job's
edge (table paths from settings, one trade date per call, partition replace), so re-runs
and backfills give identical tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F

from anomalake.settings import Settings
from spark.aggregations import histograms, rolling_means, summary_statistics
from spark.tables import Days, read_table, replace_days

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

MINUTE_FEATURES = ("close", "volume", "return_pct", "range_pct")
HISTOGRAM_FEATURES = ("return_pct", "range_pct", "volume")
ROLLING_FEATURES = ("last_close", "volume", "vwap", "volatility", "range_pct")


def minute_features(silver: DataFrame) -> DataFrame:
    """Silver bars plus ``return_pct`` and ``range_pct``.

    ``return_pct`` is the close against the symbol's previous bar that day, in % (null on
    the day's first bar); ``range_pct`` is (high - low) / close, in %.
    """
    order = Window.partitionBy("symbol", "trade_date").orderBy("minute")
    prev = F.lag("close").over(order)
    return silver.withColumns(
        {
            "return_pct": (F.col("close") / prev - 1) * 100,
            "range_pct": (F.col("high") - F.col("low")) / F.col("close") * 100,
        }
    )


def daily_summary(features: DataFrame) -> DataFrame:
    """Per symbol and trade date, from silver bars.

    Bars, first/last close, low, high, range, volume, VWAP (null
    when no volume traded), the day's return and its
    volatility (the standard deviation of minute returns).
    """
    day = features.groupBy("trade_date", "symbol").agg(
        F.count(F.lit(1)).alias("bars"),
        F.min_by("close", "minute").alias("first_close"),
        F.max_by("close", "minute").alias("last_close"),
        F.min("low").alias("low"),
        F.max("high").alias("high"),
        F.sum("volume").alias("volume"),
        F.try_divide(F.sum(F.col("close") * F.col("volume")), F.sum("volume")).alias("vwap"),
        F.stddev_samp("return_pct").alias("volatility"),
    )
    return day.withColumns(
        {
            "range_pct": (F.col("high") - F.col("low")) / F.col("last_close") * 100,
            "day_return_pct": (F.col("last_close") / F.col("first_close") - 1) * 100,
        }
    )


def daily_statistics(features: DataFrame) -> DataFrame:
    """Count, nulls, min, max, mean, std and quantiles per symbol, day and minute feature."""
    return summary_statistics(features, ["trade_date", "symbol"], MINUTE_FEATURES)


def daily_histograms(features: DataFrame, bins: int) -> DataFrame:
    """Fixed and quantile-bin histograms per day of the minute features, all symbols pooled."""
    return histograms(features, ["trade_date"], HISTOGRAM_FEATURES, bins)


def rolling_daily(daily: DataFrame, days: int) -> DataFrame:
    """Each symbol's means over its last ``days`` trading days (the day itself included)."""
    return rolling_means(daily, "symbol", "trade_date", ROLLING_FEATURES, days)


def render_histograms(frame: pd.DataFrame, folder: Path) -> list[Path]:
    """One PNG per (day, feature): fixed bins (counts) beside quantile bins (density)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    folder.mkdir(parents=True, exist_ok=True)
    for (day, feature), rows in frame.groupby(["trade_date", "feature"]):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for ax, kind in zip(axes, ("fixed", "quantile"), strict=True):
            part = rows[rows["kind"] == kind].sort_values("bin")
            width = (part["upper"] - part["lower"]).clip(lower=1e-12)
            height = part["count"] if kind == "fixed" else part["count"] / width
            ax.bar(part["lower"], height, width=width, align="edge", edgecolor="black")
            ax.set_title(f"{feature} — {kind} bins")
            ax.set_xlabel(feature)
            ax.set_ylabel("rows" if kind == "fixed" else "rows per unit")
        fig.suptitle(f"{day}: {feature} ({int(rows[rows['kind'] == 'fixed']['count'].sum())} rows)")
        fig.tight_layout()
        path = folder / str(day) / f"{feature}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


# --- the job's edge: a range of trade dates per call (one for a DAG run) -------------------


def _silver(spark: SparkSession, settings: Settings, days: Days) -> DataFrame:
    return read_table(spark, settings, settings.markets.silver_table).where(
        days.contains("trade_date")
    )


def build_daily(spark: SparkSession, settings: Settings, days: Days) -> dict[str, int]:
    """Gold summary and statistics of ``days`` from silver (partition replace)."""
    m = settings.markets
    features = minute_features(_silver(spark, settings, days)).cache()
    try:
        return {
            "daily": replace_days(
                daily_summary(features), settings.table_path(m.gold_daily_table), days
            ),
            "statistics": replace_days(
                daily_statistics(features), settings.table_path(m.gold_stats_table), days
            ),
        }
    finally:
        features.unpersist()


def build_histograms(spark: SparkSession, settings: Settings, days: Days) -> dict[str, int]:
    """Histogram table of ``days`` (partition replace) and their PNG charts under reports/."""
    m = settings.markets
    hist = daily_histograms(minute_features(_silver(spark, settings, days)), m.histogram_bins)
    rows = replace_days(hist, settings.table_path(m.gold_histograms_table), days)
    table = read_table(spark, settings, m.gold_histograms_table)
    frame = table.where(days.contains("trade_date")).toPandas()
    charts = render_histograms(frame, settings.reports_dir / "histograms")
    return {"histogram_rows": rows, "charts": len(charts)}


def build_rolling(spark: SparkSession, settings: Settings, days: Days) -> int:
    """Rolling means of ``days``, from the gold summary of the preceding trading days.

    Reads enough calendar days before the range to cover ``rolling_days`` trading days
    (weekends and holidays included), so a re-run of any date gives the same rows,
    provided earlier dates were built first (the DAG runs dates in order).
    """
    m = settings.markets
    daily = read_table(spark, settings, m.gold_daily_table)
    source = daily.where(days.widened(2 * m.rolling_days + 10).contains("trade_date"))
    rolled = rolling_daily(source, m.rolling_days).where(days.contains("trade_date"))
    return replace_days(rolled, settings.table_path(m.gold_rolling_table), days)
