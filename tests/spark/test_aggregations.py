from __future__ import annotations

import math

import pytest

from spark.aggregations import histograms, quantile_name, rolling_means, summary_statistics


def test_quantile_names() -> None:
    assert [quantile_name(q) for q in (0.05, 0.5, 0.95)] == ["p05", "p50", "p95"]


def test_summary_statistics_counts_nulls_and_nans_as_missing(spark) -> None:  # type: ignore[no-untyped-def]
    rows = [("A", 1.0), ("A", 2.0), ("A", 3.0), ("A", 4.0), ("A", float("nan")), ("A", None)]
    rows += [("B", 7.0)]
    df = spark.createDataFrame(rows, "entity string, x double")
    out = {r["entity"]: r for r in summary_statistics(df, ["entity"], ["x"]).collect()}
    a = out["A"]
    assert (a["feature"], a["count"], a["nulls"], a["min"], a["max"]) == ("x", 4, 2, 1.0, 4.0)
    assert a["mean"] == pytest.approx(2.5)
    assert a["std"] == pytest.approx(math.sqrt(5 / 3))
    assert (a["p05"], a["p50"], a["p95"]) == (1.0, 2.0, 4.0)
    assert out["B"]["count"] == 1 and out["B"]["std"] is None


def test_histograms_fixed_and_quantile_bins_cover_every_value(spark) -> None:  # type: ignore[no-untyped-def]
    rows = [("d", float(v), 5.0) for v in range(10)] + [("d", None, 5.0)]
    df = spark.createDataFrame(rows, "day string, x double, flat double")
    got = histograms(df, ["day"], ["x", "flat"], bins=5).collect()
    fixed = sorted(
        (r for r in got if r["feature"] == "x" and r["kind"] == "fixed"), key=lambda r: r["bin"]
    )
    assert [r["count"] for r in fixed] == [2, 2, 2, 2, 2]
    assert [r["lower"] for r in fixed] == pytest.approx([0, 1.8, 3.6, 5.4, 7.2])
    assert fixed[-1]["upper"] == pytest.approx(9.0)
    quantile = [r for r in got if r["feature"] == "x" and r["kind"] == "quantile"]
    assert sum(r["count"] for r in quantile) == 10
    assert all(r["lower"] <= r["upper"] for r in quantile)
    assert min(r["lower"] for r in quantile) == 0 and max(r["upper"] for r in quantile) == 9
    flat = [
        (r["kind"], r["bin"], r["lower"], r["upper"], r["count"])
        for r in got
        if r["feature"] == "flat"
    ]
    assert sorted(flat) == [("fixed", 0, 5.0, 5.0, 11), ("quantile", 0, 5.0, 5.0, 11)]


def test_rolling_means_use_the_last_n_rows_per_entity(spark) -> None:  # type: ignore[no-untyped-def]
    rows = [("A", 1, 1.0), ("A", 2, 2.0), ("A", 5, 3.0), ("B", 1, 10.0)]
    df = spark.createDataFrame(rows, "e string, t int, x double")
    out = {(r["e"], r["t"]): r for r in rolling_means(df, "e", "t", ["x"], periods=2).collect()}
    assert [out[("A", t)]["x_mean_2"] for t in (1, 2, 5)] == [1.0, 1.5, 2.5]
    assert [out[("A", t)]["periods_in_window"] for t in (1, 2, 5)] == [1, 2, 2]
    assert out[("B", 1)]["x_mean_2"] == 10.0
