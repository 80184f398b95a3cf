"""The markets batch layer for one trade date: silver, gaps, recomputed rules, reconciliation.

Declares tasks only: the work is in ``spark.jobs.markets_batch.run_day``.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from anomalake.dag_defaults import START_DATE, default_args

DOC = """
### markets_batch
For the logical date: `bronze_markets` -> `silver_markets` (one bar per symbol and minute,
first arrival wins) -> `gaps_markets` (missing minutes inside each session) ->
`batch_anomalies_markets` (A1/A2 recomputed with the speed layer's own rule code) ->
`reconciliation_markets` (per day: matched, missed by the stream, added by the stream).
Every table is replaced for that date only, so re-runs and backfills
(`airflow dags backfill markets_batch -s D1 -e D2`) are idempotent.
"""


@dag(
    dag_id="markets_batch",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["markets", "batch", "silver", "reconciliation"],
    doc_md=DOC,
    default_args=default_args(timeout_minutes=60),
)
def markets_batch() -> None:
    """Wire the daily batch task."""

    @task
    def batch_day(ds: str | None = None) -> dict[str, int]:
        """Silver, gaps, recomputed anomalies and reconciliation for the logical date."""
        from datetime import date

        from anomalake.settings import get_settings
        from spark.jobs.markets_batch import run_day
        from spark.session import get_spark

        settings = get_settings()
        assert ds is not None
        return run_day(get_spark(settings), settings, date.fromisoformat(ds))

    batch_day()


markets_batch()
