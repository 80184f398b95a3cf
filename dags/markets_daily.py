"""Daily summary of the landed market bars (bronze_markets -> gold_markets_daily).

Declares tasks only: the work is in ``spark.jobs.markets_daily``, imported inside the task.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from anomalake.dag_defaults import START_DATE, default_args

DOC = """
### markets_daily
Summarises one trading day of `bronze_markets` per symbol (bars, first/last close,
low/high, volume, VWAP) into the Delta table `gold_markets_daily`, replacing that day's
partition, so re-runs and backfills (`airflow dags backfill markets_daily -s D1 -e D2`)
are idempotent.
"""


@dag(
    dag_id="markets_daily",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["markets", "batch", "gold"],
    doc_md=DOC,
    default_args=default_args(timeout_minutes=30),
)
def markets_daily() -> None:
    """Wire the daily summary task."""

    @task
    def summarize(ds: str | None = None) -> int:
        """Replace the logical date's partition of gold_markets_daily."""
        from datetime import date

        from anomalake.settings import get_settings
        from spark.jobs.markets_daily import run
        from spark.session import get_spark

        settings = get_settings()
        assert ds is not None
        return run(get_spark(settings), settings, date.fromisoformat(ds))

    summarize()


markets_daily()
