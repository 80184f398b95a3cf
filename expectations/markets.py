"""Great Expectations suites of the markets medallion tables, as code.

Three suites, each a function returning a fresh :class:`great_expectations.ExpectationSuite`
whose thresholds are keyword arguments:

* :func:`bronze_suite` -- row checks of ``bronze_markets`` (a Spark DataFrame);
* :func:`silver_suite` -- the bronze checks plus ``(symbol, minute)`` uniqueness and the
  ``minute``/``trade_date`` columns of ``silver_markets``;
* :func:`profile_suite` -- table-level checks (empty day, row volume against the previous
  day, freshness, arrival order) on the one-row *batch profile* that :func:`batch_profile`
  computes in Spark. GX has no efficient way to express these on a Spark frame itself.

Every expectation carries GX's own ``severity`` field (``critical`` or ``warning``; GX 1.x
``Expectation.severity``, a :class:`FailureSeverity`). A failed critical expectation fails
the quality gate (:func:`expectations.runner.enforce`); a failed warning is reported and
shown in Data Docs but lets the pipeline continue.

Severity choices:

* critical: schema (columns exist with their Spark types), nulls in the key columns,
  prices and volume, non-positive prices, negative volume, ``high < low``, duplicated
  ``(symbol, minute)`` in silver, an empty day. ``high < low`` is critical because such a
  bar is physically impossible: the speed layer does not reject it, so it means a corrupt
  or column-swapped feed, and range-based features downstream would be silently wrong.
* warning: a symbol outside ``^[A-Z0-9._-]+$``, ``open``/``close`` outside ``[low, high]``,
  a day whose row count moved by more than the allowed ratio against the previous day, a
  stale (or future) newest bar, bars that arrived out of minute order.

The bar suites address Spark column types (``StringType`` ...), so they are for Spark
DataFrames; the profile suite is for the pandas frame :func:`batch_profile` returns.
On an empty frame GX treats row expectations as vacuously true: the profile's
``rows >= 1`` is what fails an empty day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.expectations.metadata_types import FailureSeverity
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from anomalake.loaders.markets import EXCHANGE_TIMEZONE

CRITICAL = FailureSeverity.CRITICAL
WARNING = FailureSeverity.WARNING

BRONZE_SUITE = "bronze_markets"
SILVER_SUITE = "silver_markets"
PROFILE_SUITE = "silver_markets_profile"

SYMBOL_PATTERN = r"^[A-Z0-9._-]+$"
PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_TYPES: dict[str, str] = {
    "symbol": "StringType",
    "event_time": "TimestampType",
    "open": "DoubleType",
    "high": "DoubleType",
    "low": "DoubleType",
    "close": "DoubleType",
    "volume": "LongType",
}
SILVER_TYPES: dict[str, str] = {**BAR_TYPES, "minute": "LongType", "trade_date": "DateType"}
SILVER_KEY = ("symbol", "minute")
INGESTION_ORDER = ("partition", "offset")
PROFILE_COLUMNS = (
    "rows",
    "previous_day_rows",
    "rows_ratio",
    "out_of_order",
    "freshness_minutes",
    "max_event_time",
)


def _bar_expectations(
    types: dict[str, str], *, min_price: float, min_volume: int, symbol_pattern: str
) -> list[gxe.Expectation]:
    """The row checks every markets bar table shares."""
    out: list[gxe.Expectation] = []
    for column, type_ in types.items():
        out += [
            gxe.ExpectColumnToExist(column=column, severity=CRITICAL),
            gxe.ExpectColumnTypeToBe(column=column, type_=type_, severity=CRITICAL),
            gxe.ExpectColumnValuesToNotBeNull(column=column, severity=CRITICAL),
        ]
    out += [
        gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=min_price, strict_min=True, severity=CRITICAL
        )
        for column in PRICE_COLUMNS
    ]
    out += [
        gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=min_volume, severity=CRITICAL),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="high", column_B="low", or_equal=True, severity=CRITICAL
        ),
        gxe.ExpectColumnValuesToMatchRegex(column="symbol", regex=symbol_pattern, severity=WARNING),
    ]
    for price in ("open", "close"):
        out += [
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="high", column_B=price, or_equal=True, severity=WARNING
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=price, column_B="low", or_equal=True, severity=WARNING
            ),
        ]
    return out


def bronze_suite(
    *,
    name: str = BRONZE_SUITE,
    min_price: float = 0.0,
    min_volume: int = 0,
    symbol_pattern: str = SYMBOL_PATTERN,
) -> gx.ExpectationSuite:
    """The suite of ``bronze_markets``: schema, nulls, price/volume domains, bar shape.

    Extra columns (Kafka coordinates, ``ingested_at`` ...) are allowed.

    Args:
        name: Suite name (also shown in Data Docs).
        min_price: Prices must be strictly greater than this.
        min_volume: Volume must be at least this.
        symbol_pattern: Regex every symbol should match (warning).

    Returns:
        A new, unsaved expectation suite.
    """
    return gx.ExpectationSuite(
        name=name,
        expectations=_bar_expectations(
            BAR_TYPES, min_price=min_price, min_volume=min_volume, symbol_pattern=symbol_pattern
        ),
        meta={"table": "bronze_markets", "owner": "anomalake"},
    )


def silver_suite(
    *,
    name: str = SILVER_SUITE,
    min_price: float = 0.0,
    min_volume: int = 0,
    symbol_pattern: str = SYMBOL_PATTERN,
    key: Sequence[str] = SILVER_KEY,
) -> gx.ExpectationSuite:
    """The suite of ``silver_markets``: bronze checks, ``minute``/``trade_date``, unique keys.

    Args:
        name: Suite name (also shown in Data Docs).
        min_price: Prices must be strictly greater than this.
        min_volume: Volume must be at least this.
        symbol_pattern: Regex every symbol should match (warning).
        key: Columns that identify one bar (compound uniqueness, critical).

    Returns:
        A new, unsaved expectation suite.
    """
    expectations = _bar_expectations(
        SILVER_TYPES, min_price=min_price, min_volume=min_volume, symbol_pattern=symbol_pattern
    )
    expectations.append(
        gxe.ExpectCompoundColumnsToBeUnique(column_list=list(key), severity=CRITICAL)
    )
    return gx.ExpectationSuite(
        name=name,
        expectations=expectations,
        meta={"table": "silver_markets", "owner": "anomalake"},
    )


def profile_suite(
    *,
    name: str = PROFILE_SUITE,
    min_rows: int = 1,
    min_rows_ratio: float = 0.5,
    max_rows_ratio: float = 2.0,
    max_freshness_minutes: float = 12 * 60,
    max_out_of_order: int = 0,
    empty_day: FailureSeverity = CRITICAL,
) -> gx.ExpectationSuite:
    """The suite of a day's batch profile (see :func:`batch_profile`).

    A null measure (no previous day, no ingestion order, no rows) is not evaluated: GX treats
    a column expectation on null values as vacuously true.

    Args:
        name: Suite name (also shown in Data Docs).
        min_rows: Fewer rows than this is an empty day (of severity ``empty_day``).
        min_rows_ratio: Lowest allowed ``rows / previous_day_rows`` (warning).
        max_rows_ratio: Highest allowed ``rows / previous_day_rows`` (warning).
        max_freshness_minutes: Oldest allowed newest bar, in minutes before the profile's
            ``as_of`` (warning). A newest bar after ``as_of`` also warns.
        max_out_of_order: Most bars allowed to arrive after a later minute of their symbol
            (warning).
        empty_day: Severity of an empty day: critical by default; warning where days
            without data are expected (exchange holidays on a weekday schedule).

    Returns:
        A new, unsaved expectation suite.
    """
    return gx.ExpectationSuite(
        name=name,
        expectations=[
            gxe.ExpectColumnValuesToBeBetween(
                column="rows", min_value=min_rows, severity=empty_day
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="rows_ratio",
                min_value=min_rows_ratio,
                max_value=max_rows_ratio,
                severity=WARNING,
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="freshness_minutes",
                min_value=0,
                max_value=max_freshness_minutes,
                severity=WARNING,
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="out_of_order", max_value=max_out_of_order, severity=WARNING
            ),
        ],
        meta={"table": "silver_markets", "kind": "batch profile", "owner": "anomalake"},
    )


def end_of_trade_date(day: date, tz: str = EXCHANGE_TIMEZONE) -> datetime:
    """The instant a trade date ends (exchange-local midnight), timezone-aware in UTC.

    The usual ``as_of`` of :func:`batch_profile` for a daily run: freshness is then how long
    before the end of the logical date the newest bar is, the same on a re-run or backfill.
    """
    local_end = datetime.combine(day + timedelta(days=1), time(), tzinfo=ZoneInfo(tz))
    return local_end.astimezone(ZoneInfo("UTC"))


def batch_profile(
    df: DataFrame,
    *,
    previous_day_rows: int | None,
    as_of: datetime,
    order_by: Sequence[str] = INGESTION_ORDER,
) -> pd.DataFrame:
    """One Spark job over a day's bars -> a one-row pandas frame for :func:`profile_suite`.

    Columns:

    * ``rows``: bars in ``df``.
    * ``previous_day_rows``: as given (null when unknown).
    * ``rows_ratio``: ``rows / previous_day_rows``; null without a positive previous count.
    * ``out_of_order``: bars whose ``minute`` is not after the previous bar of the same
      symbol in ingestion order (``order_by``, by default Kafka ``partition, offset``; the
      markets topic is keyed by symbol, so a symbol's bars are in one partition in arrival
      order). Silver keeps the first arrival of each minute and the speed layer quarantines
      late bars, so anything above 0 means late data got past the stream. Null when ``df``
      lacks the ``order_by`` columns (not measured).
    * ``freshness_minutes``: minutes from the newest ``event_time`` to ``as_of`` (negative
      when bars are newer than ``as_of``); null when ``df`` is empty.
    * ``max_event_time``: the newest ``event_time``, ISO-8601 UTC, for the report.

    Args:
        df: The day's bars (``symbol``, ``event_time`` and ``minute`` or derivable from it).
        previous_day_rows: Row count of the previous day, if known.
        as_of: Timezone-aware reference instant, e.g. :func:`end_of_trade_date` of the day.
        order_by: Columns giving ingestion order within a symbol.

    Returns:
        A one-row pandas DataFrame with the columns above (nullable ``Int64``/``Float64``).

    Raises:
        ValueError: ``as_of`` is naive.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    minute = (
        F.col("minute")
        if "minute" in df.columns
        else F.floor(F.unix_timestamp("event_time") / 60).cast("long")
    )
    measured = all(c in df.columns for c in order_by)
    aggregates = [
        F.count(F.lit(1)).alias("rows"),
        F.max(F.col("event_time").cast("double")).alias("max_epoch"),
    ]
    if measured:
        arrival = Window.partitionBy("symbol").orderBy(*order_by)
        df = df.withColumn("_late", (minute <= F.lag(minute).over(arrival)).cast("long"))
        aggregates.append(F.coalesce(F.sum("_late"), F.lit(0)).alias("out_of_order"))
    row = df.agg(*aggregates).first()
    assert row is not None  # a global aggregate always has one row
    rows = int(row["rows"])
    max_epoch: float | None = row["max_epoch"]
    ratio = rows / previous_day_rows if previous_day_rows else None
    newest = (
        datetime.fromtimestamp(max_epoch, tz=ZoneInfo("UTC")) if max_epoch is not None else None
    )
    frame = pd.DataFrame(
        {
            "rows": pd.array([rows], dtype="Int64"),
            "previous_day_rows": pd.array([previous_day_rows], dtype="Int64"),
            "rows_ratio": pd.array([ratio], dtype="Float64"),
            "out_of_order": pd.array(
                [int(row["out_of_order"]) if measured else None], dtype="Int64"
            ),
            "freshness_minutes": pd.array(
                [(as_of.timestamp() - max_epoch) / 60 if max_epoch is not None else None],
                dtype="Float64",
            ),
            "max_event_time": [newest.isoformat() if newest else None],
        }
    )
    return frame[list(PROFILE_COLUMNS)]
