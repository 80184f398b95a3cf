"""The markets batch layer for one trade date: quality gates, silver, gold, clusters, rules.

Declares tasks only: the work is in ``spark.jobs`` and ``ml``, imported inside the tasks.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronDataIntervalTimetable, dag, task

from anomalake.dag_defaults import START_DATE, default_args, failing_without_retry, table_asset

DOC = """
### markets_batch
For the logical date (a trade date):

1. `check_bronze` — Great Expectations suite on `bronze_markets` (schema, nulls, ranges)
   and on the day's profile (row count vs the previous day, freshness). A failed
   **critical** expectation fails the task without retrying and stops everything
   downstream; failed **warnings** are reported and pass. Results: Data Docs under
   `<home>/reports/quality/data_docs/index.html`.
2. `build_silver` — `silver_markets` (one bar per symbol and minute, first arrival wins)
   and `gaps_markets` (missing minutes inside each session).
3. `check_silver` — the silver suite (adds symbol+minute uniqueness and ordering);
   updates the `silver_markets` Asset, for downstream DAGs to wait on (none does yet).
4. `build_daily` — `gold_markets_daily` (bars, first/last close, low/high/range, volume,
   VWAP, return, volatility) and `gold_markets_stats` (count, nulls, min, max, mean, std,
   quantiles per symbol and feature).
5. `build_histograms` — `gold_markets_histograms` (fixed and quantile bins) and PNG charts
   under `<home>/reports/histograms/<date>/`.
6. `build_rolling` — `gold_markets_rolling`, means over each symbol's last 20 trading days.
7. `cluster_symbol_days` — K-Means (k by silhouette) over symbol-day features, tracked in
   MLflow; atypical symbol-days to `batch_anomalies_markets_daily` with the reason.
8. `recompute_rules` — A1/A2 over silver with the speed layer's own code into
   `batch_anomalies_markets`, and `reconciliation_markets` against the bars the stream
   fired on (their A1/A2 flags in bronze).

Runs on weekdays once the day's session is over (12:00 UTC; the exchange closes 10:00
UTC). An exchange holiday has no bars: its empty day is reported as a warning, not a
failure. Every table is replaced for that date only, so re-runs and backfills
(`airflow dags backfill markets_batch -s D1 -e D2`, or `anomalake batch run --date D`) are
idempotent. Dates run in order (`max_active_runs=1`) because rolling means read earlier days.
"""


def _days(ds: str | None) -> Any:
    from datetime import date

    from spark.tables import Days

    assert ds is not None
    return Days.one(date.fromisoformat(ds))


def _session() -> Any:
    from anomalake.settings import get_settings
    from spark.session import get_spark

    settings = get_settings()
    return get_spark(settings), settings


def _quality_gate(check: str, ds: str | None) -> dict[str, Any]:
    """Run a check of ``spark.jobs.markets_quality``; a critical miss fails without retry."""
    from expectations.runner import QualityGateFailed
    from spark.jobs import markets_quality

    with failing_without_retry(QualityGateFailed):
        result: dict[str, Any] = getattr(markets_quality, check)(*_session(), _days(ds))
    return result


@dag(
    dag_id="markets_batch",
    # One run per weekday, after that trade date's session: the data interval
    # [D 12:00 UTC, next weekday 12:00 UTC) runs when it ends, with ds = D.
    schedule=CronDataIntervalTimetable("0 12 * * 1-5", timezone="UTC"),
    start_date=START_DATE,
    catchup=True,
    max_active_runs=1,
    tags=["markets", "batch", "quality", "silver", "gold"],
    doc_md=DOC,
    default_args=default_args(timeout_minutes=60),
)
def markets_batch() -> None:
    """Wire the daily batch tasks."""

    @task
    def check_bronze(ds: str | None = None) -> dict[str, Any]:
        """Quality gate on the day's bronze bars (fails without retry on a critical miss)."""
        return _quality_gate("check_bronze", ds)

    @task
    def build_silver(ds: str | None = None) -> dict[str, int]:
        """Silver bars and gaps of the day."""
        from spark.jobs.markets_batch import build_silver

        return build_silver(*_session(), _days(ds))

    @task(outlets=[table_asset("silver_markets")])
    def check_silver(ds: str | None = None) -> dict[str, Any]:
        """Quality gate on the day's silver bars; on success the silver Asset is updated."""
        return _quality_gate("check_silver", ds)

    @task(outlets=[table_asset("gold_markets_daily")])
    def build_daily(ds: str | None = None) -> dict[str, int]:
        """Gold daily summary and statistics."""
        from spark.jobs.markets_gold import build_daily

        return build_daily(*_session(), _days(ds))

    @task
    def build_histograms(ds: str | None = None) -> dict[str, int]:
        """Histogram table and PNG charts."""
        from spark.jobs.markets_gold import build_histograms

        return build_histograms(*_session(), _days(ds))

    @task
    def build_rolling(ds: str | None = None) -> int:
        """20-trading-day rolling means."""
        from spark.jobs.markets_gold import build_rolling

        return build_rolling(*_session(), _days(ds))

    @task
    def cluster_symbol_days(ds: str | None = None) -> dict[str, Any]:
        """K-Means over symbol-days (MLflow); atypical ones to the batch anomalies table."""
        from spark.jobs.markets_clusters import run

        return run(*_session(), _days(ds))

    @task
    def recompute_rules(ds: str | None = None) -> dict[str, int]:
        """A1/A2 recomputed over silver and reconciled with the bars the stream fired on."""
        from spark.jobs.markets_batch import recompute_and_reconcile

        return recompute_and_reconcile(*_session(), _days(ds))

    silver_checked = check_bronze() >> build_silver() >> check_silver()
    daily = build_daily()
    silver_checked >> [daily, build_histograms(), recompute_rules()]
    daily >> build_rolling() >> cluster_symbol_days()


markets_batch()
