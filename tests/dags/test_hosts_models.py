"""The hosts_models DAG: gate -> train -> promote, and a critical failure stops it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from anomalake.generators.hosts import generate_memory, to_export
from anomalake.settings import Settings, get_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def hosts_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "ton-iot"
    monkeypatch.setenv("ANOMALAKE_HOSTS__TARGETS", '["toniot-memory"]')
    monkeypatch.setenv("ANOMALAKE_HOSTS__TONIOT_PATH", str(data))
    monkeypatch.setenv("ANOMALAKE_HOSTS__SCORER__MODEL__NAME", "test-dag-toniot-{stream}")
    get_settings.cache_clear()
    yield data
    monkeypatch.undo()
    get_settings.cache_clear()


def _write(folder: Path, seed: int, negative_every: int = 0) -> None:
    frame = generate_memory(2500, seed=seed)
    if negative_every:
        frame.loc[frame.index[::negative_every], "RSIZE"] = -1.0
    folder.mkdir(parents=True, exist_ok=True)
    to_export(frame, "memory").to_csv(folder / "linux_memory1.csv", index=False)


def test_the_dag_promotes_a_first_model_and_stops_at_the_gate_on_bad_data(  # type: ignore[no-untyped-def]
    airflow_db: Settings, mlflow_server: str, hosts_env: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from ml.registry import list_models

    dag = DagBag(dag_folder=str(airflow_db.dags_folder)).get_dag("hosts_models")
    assert dag is not None and dag.catchup is False and "hosts" in dag.tags
    name = "local-test-dag-toniot-memory"

    _write(hosts_env, seed=5)
    run = dag.test(logical_date=datetime(2026, 5, 4, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert set(states) == {"check_training_data", "train_and_register", "promote"}
    versions = [r for r in list_models(get_settings()) if r.name == name]
    assert [(r.version, r.aliases) for r in versions] == [("1", ("challenger", "champion"))]

    _write(hosts_env, seed=6, negative_every=50)
    run = dag.test(logical_date=datetime(2026, 5, 11, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert states == {
        "check_training_data": "failed",
        "train_and_register": "upstream_failed",
        "promote": "upstream_failed",
    }
    assert [r.version for r in list_models(get_settings()) if r.name == name] == ["1"]
