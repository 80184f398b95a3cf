"""What every Anomalake DAG shares (light: imported at DAG parse time)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

START_DATE = datetime(2026, 1, 1)


def default_args(owner: str = "data-engineering", timeout_minutes: int = 30) -> dict[str, Any]:
    """Retries with a delay and an execution timeout for every task."""
    return {
        "owner": owner,
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(minutes=timeout_minutes),
    }


def table_asset(name: str) -> Any:
    """The Airflow Asset standing for the Delta table ``name`` (updated when it is written)."""
    from airflow.sdk import Asset

    return Asset(name=name, uri=f"delta://anomalake/{name}")
