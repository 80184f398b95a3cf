from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from spark.jobs.markets_gold import (
    daily_histograms,
    daily_statistics,
    daily_summary,
    minute_features,
    render_histograms,
)


def _silver(spark):  # type: ignore[no-untyped-def]
    # symbol, minute, close, high, low, volume on one trade date; B has a single bar
    rows = [
        ("A", 100, 10.0, 10.5, 9.5, 100),
        ("A", 101, 11.0, 11.0, 10.0, 300),
        ("A", 103, 9.9, 10.0, 9.8, 100),
        ("B", 100, 5.0, 5.0, 5.0, 0),
    ]
    return spark.createDataFrame(
        rows, "symbol string, minute long, close double, high double, low double, volume long"
    ).withColumn("trade_date", F.lit(date(2026, 4, 6)))


def test_minute_features_and_daily_summary(spark) -> None:  # type: ignore[no-untyped-def]
    features = minute_features(_silver(spark))
    returns = {r["minute"]: r["return_pct"] for r in features.where("symbol = 'A'").collect()}
    assert returns[100] is None
    assert returns[101] == pytest.approx(10.0)
    assert returns[103] == pytest.approx(-10.0)  # previous *bar*, across the gap
    day = {r["symbol"]: r for r in daily_summary(features).collect()}
    a = day["A"]
    assert (a["bars"], a["first_close"], a["last_close"], a["low"], a["high"]) == (
        3,
        10.0,
        9.9,
        9.5,
        11.0,
    )
    assert a["vwap"] == pytest.approx((10 * 100 + 11 * 300 + 9.9 * 100) / 500)
    assert a["day_return_pct"] == pytest.approx(-1.0)
    assert a["range_pct"] == pytest.approx(1.5 / 9.9 * 100)
    assert a["volatility"] == pytest.approx(pd.Series([10.0, -10.0]).std())
    assert day["B"]["volatility"] is None and day["B"]["bars"] == 1


def test_daily_statistics_and_histograms_per_feature(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    features = minute_features(_silver(spark))
    stats = daily_statistics(features).where("symbol = 'A'").collect()
    by_feature = {r["feature"]: r for r in stats}
    assert set(by_feature) == {"close", "volume", "return_pct", "range_pct"}
    assert by_feature["volume"]["max"] == 300 and by_feature["return_pct"]["nulls"] == 1
    hist = daily_histograms(features, bins=4).toPandas()
    fixed_volume = hist[(hist["feature"] == "volume") & (hist["kind"] == "fixed")]
    assert fixed_volume["count"].sum() == 4
    charts = render_histograms(hist, tmp_path)
    assert len(charts) == 3 and all(p.stat().st_size > 1000 for p in charts)
    assert charts[0].read_bytes()[:4] == b"\x89PNG"


def test_an_empty_day_gives_empty_views(spark) -> None:  # type: ignore[no-untyped-def]
    from spark.jobs.markets_batch import gaps
    from spark.jobs.markets_gold import rolling_daily

    empty = _silver(spark).where("false").withColumn("event_time", F.current_timestamp())
    features = minute_features(empty)
    daily = daily_summary(features)
    assert daily.count() == 0
    assert daily_statistics(features).count() == 0
    assert daily_histograms(features, bins=4).count() == 0
    assert gaps(empty).count() == 0
    assert rolling_daily(daily, 20).count() == 0
