"""Generic batch views of any entity's numeric features: statistics, histograms, rolling means.

Every function takes a DataFrame and column names and returns a DataFrame, so each use
case plugs in by naming its entity, day and feature columns (markets: ``symbol``,
``trade_date``, ``close``/``volume``/...). Nothing here reads or writes tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)


def quantile_name(q: float) -> str:
    """Column name of a quantile: 0.05 -> ``p05``, 0.5 -> ``p50``."""
    return f"p{round(q * 100):02d}"


def long_features(df: DataFrame, keys: Sequence[str], features: Sequence[str]) -> DataFrame:
    """``keys`` + (``feature``, ``value``): one row per input row and feature, nulls kept."""
    pairs = F.array(
        *(
            F.struct(F.lit(f).alias("feature"), F.col(f).cast("double").alias("value"))
            for f in features
        )
    )
    return df.select(*keys, F.explode(pairs).alias("p")).select(*keys, "p.feature", "p.value")


def summary_statistics(
    df: DataFrame,
    keys: Sequence[str],
    features: Sequence[str],
    quantiles: Sequence[float] = QUANTILES,
    accuracy: int = 10_000,
) -> DataFrame:
    """Per ``keys`` and feature: count, nulls, min, max, mean, std and approximate quantiles.

    NaN counts as missing. ``std`` is the sample standard deviation (null for one value).
    Quantiles are ``percentile_approx`` with relative error ``1 / accuracy``.
    """
    long = long_features(df, keys, features).withColumn(
        "value", F.when(~F.isnan("value"), F.col("value"))
    )
    qs = F.percentile_approx("value", list(quantiles), accuracy)
    out = long.groupBy(*keys, "feature").agg(
        F.count("value").alias("count"),
        F.count(F.when(F.col("value").isNull(), 1)).alias("nulls"),
        F.min("value").alias("min"),
        F.max("value").alias("max"),
        F.mean("value").alias("mean"),
        F.stddev_samp("value").alias("std"),
        qs.alias("_q"),
    )
    return out.select(
        *keys,
        "feature",
        "count",
        "nulls",
        "min",
        "max",
        "mean",
        "std",
        *(F.col("_q")[i].alias(quantile_name(q)) for i, q in enumerate(quantiles)),
    )


def _bin_rows(binned: DataFrame, keys: Sequence[str], kind: str) -> DataFrame:
    return (
        binned.groupBy(*keys, "feature", "bin", "lower", "upper")
        .agg(F.count(F.lit(1)).alias("count"))
        .withColumn("kind", F.lit(kind))
    )


def histograms(
    df: DataFrame, keys: Sequence[str], features: Sequence[str], bins: int = 20
) -> DataFrame:
    """Histograms per ``keys`` and feature, with fixed-width and with quantile bins.

    Rows: ``keys, feature, kind ('fixed' | 'quantile'), bin, lower, upper, count``.
    Fixed bins split [min, max] into ``bins`` equal widths (max falls in the last bin);
    quantile bins have edges at the i/bins quantiles, with repeated edges merged, so a
    feature with many equal values has fewer bins. Nulls and NaNs are not counted. Bins
    with no values are absent.
    """
    values = long_features(df, keys, features).where(F.col("value").isNotNull() & ~F.isnan("value"))
    group = [*keys, "feature"]
    edges = values.groupBy(*group).agg(
        F.min("value").alias("lo"),
        F.max("value").alias("hi"),
        F.array_distinct(
            F.percentile_approx("value", [i / bins for i in range(bins + 1)], 10_000)
        ).alias("edges"),
    )
    joined = values.join(edges, group)
    width = (F.col("hi") - F.col("lo")) / bins
    fixed_bin = F.when(F.col("hi") == F.col("lo"), 0).otherwise(
        F.least(F.floor((F.col("value") - F.col("lo")) / width), F.lit(bins - 1))
    )
    fixed = joined.withColumn("bin", fixed_bin.cast("int")).withColumns(
        {
            "lower": F.col("lo") + F.col("bin") * width,
            "upper": F.when(F.col("hi") == F.col("lo"), F.col("hi")).otherwise(
                F.col("lo") + (F.col("bin") + 1) * width
            ),
        }
    )
    last = F.size("edges") - 2
    below = F.size(F.filter("edges", lambda e: e <= F.col("value"))) - 1
    quantile_bin = F.greatest(F.least(below, last), F.lit(0))
    quantile = joined.withColumn("bin", quantile_bin.cast("int")).withColumns(
        {
            "lower": F.least(F.col("lo"), F.element_at("edges", F.col("bin") + 1)),
            "upper": F.greatest(
                F.when(F.col("bin") == last, F.col("hi")),
                F.element_at("edges", F.least(F.col("bin") + 2, F.size("edges"))),
            ),
        }
    )
    quantile = quantile.withColumn(
        "lower", F.when(F.col("bin") == 0, F.col("lo")).otherwise(F.col("lower"))
    )
    columns = [*keys, "feature", "kind", "bin", "lower", "upper", "count"]
    return (
        _bin_rows(fixed, keys, "fixed")
        .select(*columns)
        .unionByName(_bin_rows(quantile, keys, "quantile").select(*columns))
    )


def rolling_means(
    df: DataFrame, entity: str, order: str, features: Sequence[str], periods: int = 20
) -> DataFrame:
    """Mean of each feature over each entity's last ``periods`` rows (this one included).

    Rows are periods (e.g. trading days), not calendar time, so holidays and weekends do
    not shorten the window. ``periods_in_window`` says how many rows the mean saw (fewer
    than ``periods`` at the start of an entity's history).
    """
    window = Window.partitionBy(entity).orderBy(order).rowsBetween(-(periods - 1), 0)
    means: dict[str, Column] = {
        f"{f}_mean_{periods}": F.avg(F.col(f)).over(window) for f in features
    }
    return df.select(
        entity,
        order,
        *features,
        F.count(F.lit(1)).over(window).alias("periods_in_window"),
        *(c.alias(n) for n, c in means.items()),
    )
