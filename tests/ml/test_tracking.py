from __future__ import annotations

import pytest
import requests

from anomalake.settings import Settings
from ml.tracking import experiment_name, use_tracking_server


def test_experiment_names_carry_the_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert experiment_name(Settings(profile="local", home=tmp_path), "markets") == "local-markets"


@pytest.mark.integration
def test_a_run_is_logged_to_the_server_and_read_back(
    mlflow_server: str, settings: Settings
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    assert requests.get(f"{mlflow_server}/health", timeout=5).text.strip() == "OK"
    experiment_id = use_tracking_server(settings, "foundation-check")
    with mlflow.start_run() as run:
        mlflow.log_param("window", 10)
        mlflow.log_metric("f1", 0.5, step=1)
        mlflow.log_text("hello", "notes/hello.txt")
    client = MlflowClient(tracking_uri=mlflow_server)
    fetched = client.get_run(run.info.run_id)
    assert fetched.info.experiment_id == experiment_id
    assert fetched.data.params == {"window": "10"}
    assert fetched.data.metrics == {"f1": 0.5}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "notes")] == ["notes/hello.txt"]
    exp = client.get_experiment(experiment_id)
    assert exp.name == "local-foundation-check"
