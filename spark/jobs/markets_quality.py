"""Quality gates of the markets batch layer: the expectation suites run on the day's tables.

Each check validates the day's rows against the table's suite and the day's profile
(rows vs the previous day, freshness, arrival order) against the profile suite, writes
the results to the Data Docs site under ``<reports>/quality`` and raises
:class:`expectations.runner.QualityGateFailed` if a critical expectation failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from anomalake.settings import Settings
from expectations.markets import (
    WARNING,
    batch_profile,
    bronze_suite,
    end_of_trade_date,
    profile_suite,
    silver_suite,
)
from expectations.runner import QualityResult, enforce, validate
from spark.jobs.markets_batch import trade_date
from spark.tables import Days, read_table

if TYPE_CHECKING:
    import great_expectations as gx
    from pyspark.sql import Column, DataFrame, SparkSession

PREVIOUS_DAY_SEARCH = 10  # calendar days searched back for the previous day with rows


def previous_day_rows(table: DataFrame, day: Column, days: Days) -> int | None:
    """Rows of the latest day before ``days`` that has any (within 10 calendar days)."""
    before = Days(days.widened(PREVIOUS_DAY_SEARCH).first, days.first)
    counts = (
        table.where(before.contains(day) & (day < F.lit(days.first)))
        .groupBy(day.alias("d"))
        .count()
        .orderBy(F.col("d").desc())
        .first()
    )
    return None if counts is None else int(counts["count"])


def _check(
    settings: Settings,
    table: DataFrame,
    day: Column,
    days: Days,
    name: str,
    suite: gx.ExpectationSuite,
) -> dict[str, Any]:
    context = settings.reports_dir / "quality"
    rows = table.where(days.contains(day))
    results: list[QualityResult] = [
        validate(rows, suite, name=name, context_dir=context, run_label=str(days))
    ]
    profile = batch_profile(
        rows,
        previous_day_rows=previous_day_rows(table, day, days),
        as_of=end_of_trade_date(days.last),
    )
    results.append(
        validate(
            profile,
            profile_suite(name=f"{name}_profile", empty_day=WARNING),
            name=f"{name}_profile",
            context_dir=context,
            run_label=str(days),
        )
    )
    for result in results:
        enforce(result)
    return {
        "rows": int(profile["rows"].iloc[0]),
        "warnings": [w for r in results for w in r.failed_warning],
        "data_docs": str(results[0].data_docs_index),
    }


def check_bronze(spark: SparkSession, settings: Settings, days: Days) -> dict[str, Any]:
    """The bronze suite and profile on ``days`` of the bronze table."""
    table = settings.markets.bronze_table
    bronze = read_table(spark, settings, table)
    return _check(settings, bronze, trade_date(), days, table, bronze_suite())


def check_silver(spark: SparkSession, settings: Settings, days: Days) -> dict[str, Any]:
    """The silver suite and profile on ``days`` of the silver table."""
    table = settings.markets.silver_table
    silver = read_table(spark, settings, table)
    return _check(settings, silver, F.col("trade_date"), days, table, silver_suite())
