"""What every Anomalake DAG shares (light: imported at DAG parse time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def failing_without_retry(*errors: type[BaseException]) -> Iterator[None]:
    """Inside a task: turn ``errors`` (retrying cannot help) into a failure without retry."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except errors as failed:
        raise AirflowFailException(str(failed)) from failed
