"""Weekly retraining of the hosts attack classifiers: quality gate, train, register, promote.

Declares tasks only: the work is in ``ml.hosts_pipeline``, imported inside the tasks.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from anomalake.dag_defaults import START_DATE, default_args, failing_without_retry

DOC = """
### hosts_models
Retrains the attack classifiers of the hosts use case and promotes a better one, for each
target in `ANOMALAKE_HOSTS__TARGETS` (default `["nslkdd", "toniot-memory"]`):

1. `check_training_data` — loads each target's training data and runs its Great
   Expectations suite (`expectations/hosts.py`: columns present, no nulls in key fields,
   non-negative counts, rates in [0, 1], known protocols, labels 0/1 with both classes).
   A failed **critical** expectation, or missing data, fails the task without retrying and
   nothing is trained; warnings are reported and pass. Data Docs:
   `<home>/reports/quality/data_docs/index.html`.
2. `train_and_register` — trains on the same files (their SHA-256 must not have changed
   since the check), logs the run to MLflow (params, metrics, data identity, figures, the
   holdout rows, the model) and registers it with the alias `challenger`.
3. `promote` — scores `@challenger` and `@champion` on the challenger's holdout (rows no
   model trained on: NSL-KDD a fixed content-hashed share of the training file, ToN-IoT the
   latest time slice) and moves `champion` only if the challenger beats it by more than
   `ANOMALAKE_HOSTS__PROMOTION_MARGIN` on `ANOMALAKE_HOSTS__PROMOTION_METRIC` (default
   ROC-AUC, 0.005). Decisions are runs of the `<prefix>promotions` MLflow experiment.

Data: `ANOMALAKE_HOSTS__NSLKDD_PATH` (a folder with `KDDTrain+_20Percent.txt`) and
`ANOMALAKE_HOSTS__TONIOT_PATH` (a ToN-IoT Linux CSV or folder); by default
`<home>/data/hosts/nsl-kdd` and `<home>/data/hosts/ton-iot`.

Weekly (Mondays 03:00 UTC) and on demand (trigger it in the UI or with
`airflow dags trigger hosts_models`); no catch-up: a missed week is not worth two
retrainings on the same data. Undo a promotion with `anomalake models rollback NAME`.
"""


def _settings() -> Any:
    from anomalake.settings import get_settings

    return get_settings()


@dag(
    dag_id="hosts_models",
    schedule="0 3 * * 1",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hosts", "ml", "mlflow", "quality", "retraining"],
    doc_md=DOC,
    default_args=default_args(owner="ml-engineering", timeout_minutes=120),
)
def hosts_models() -> None:
    """Wire the retraining tasks."""

    @task
    def check_training_data(ds: str | None = None) -> list[dict[str, Any]]:
        """Quality gate on each target's training data (fails without retry on a critical miss)."""
        from anomalake.errors import AnomalakeError
        from expectations.runner import QualityGateFailed
        from ml.hosts_pipeline import check_targets

        with failing_without_retry(QualityGateFailed, AnomalakeError):
            return check_targets(_settings(), run_label=ds)

    @task
    def train_and_register(checked: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Train on the checked files, log to MLflow, register as ``challenger``."""
        from ml.hosts_pipeline import RunOutdated, train_checked

        with failing_without_retry(RunOutdated):
            return train_checked(_settings(), checked)

    @task
    def promote(registered: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Challenger vs champion on the challenger's logged holdout; promote if better."""
        from ml.hosts_pipeline import RunOutdated, promote_registered

        with failing_without_retry(RunOutdated):
            return promote_registered(_settings(), registered)

    promote(train_and_register(check_training_data()))


hosts_models()
