from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from anomalake.generators.hosts import generate_memory, to_export, write_host_files
from anomalake.loaders.nslkdd import COLUMNS, FILES, load_nslkdd
from anomalake.settings import Settings, load_settings
from expectations.runner import QualityGateFailed
from ml.hosts import split_by_time
from ml.hosts_pipeline import (
    RunOutdated,
    load_training_data,
    nslkdd_holdout_mask,
    retrain_nslkdd,
    retrain_toniot,
    target,
    targets,
    train_checked,
)
from ml.registry import alias_version, list_models, load_holdout, registered_name
from tests.ml.test_hosts import synthetic_kdd


def test_the_nslkdd_holdout_is_chosen_by_row_content_whatever_else_the_file_holds() -> None:
    frame = synthetic_kdd(3000, seed=4).drop_duplicates(subset=[*COLUMNS[:-1]])
    mask = nslkdd_holdout_mask(frame, 0.1)
    assert 0.07 < mask.mean() < 0.13
    held = frame[mask]
    # Shuffled, and with a third of the rows gone: every remaining record keeps its side.
    other = frame.sample(frac=0.66, random_state=1)
    again = other[nslkdd_holdout_mask(other, 0.1)]
    assert set(again.index) == set(held.index) & set(other.index)
    with pytest.raises(ValueError, match="fraction"):
        nslkdd_holdout_mask(frame, 1.0)


def test_targets_name_their_models_and_data_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANOMALAKE_HOSTS__NSLKDD_PATH", str(tmp_path / "real-kdd"))
    monkeypatch.setenv("ANOMALAKE_HOSTS__TARGETS", '["toniot-process"]')
    from_env = load_settings(home=tmp_path)
    assert from_env.nslkdd_path == tmp_path / "real-kdd"
    assert [t.key for t in targets(from_env)] == ["toniot-process"]
    monkeypatch.undo()
    s = Settings(profile="local", home=tmp_path)
    t = target(s, "toniot-process")
    assert (t.model_name, t.experiment, t.activity) == (
        "local-hosts-toniot-process",
        "hosts-toniot-process",
        "process",
    )
    assert t.path == tmp_path / "data" / "hosts" / "ton-iot"
    assert target(s, "nslkdd").path == tmp_path / "data" / "hosts" / "nsl-kdd"
    from anomalake.errors import AnomalakeError

    with pytest.raises(AnomalakeError, match="ANOMALAKE_HOSTS__NSLKDD_PATH"):
        load_training_data(target(s, "nslkdd"))


def test_training_refuses_data_changed_since_the_quality_check(tmp_path: Path) -> None:
    s = Settings(profile="local", home=tmp_path, hosts={"targets": ["toniot-memory"]})
    folder = target(s, "toniot-memory").path
    folder.mkdir(parents=True)
    to_export(generate_memory(300, seed=1), "memory").to_csv(
        folder / "linux_memory1.csv", index=False
    )
    identity = load_training_data(target(s, "toniot-memory")).identity
    checked = [{"target": "toniot-memory", "identity": f"{identity}-then", "quality_passed": True}]
    with pytest.raises(RunOutdated, match="changed after the quality check.*fix: run the"):
        train_checked(s, checked)


@pytest.mark.integration
def test_retrain_toniot_gates_trains_registers_and_promotes(
    settings: Settings, mlflow_server: str, tmp_path: Path
) -> None:
    name = registered_name(settings, "test-pipeline-toniot")
    files = write_host_files(tmp_path / "good", 2500, seed=5, activities=("memory",))
    out = retrain_toniot(settings, files["memory"], "memory", model_name=name, figures=False)
    assert out["quality"]["passed"] and out["version"] == "1"
    assert out["decision"]["promoted"] and out["decision"]["champion_after"] == "1"
    assert alias_version(settings, name, "champion") == "1"
    # The holdout is the latest slice by time, logged with the run.
    frame = load_training_data(target(settings, "toniot-memory", path=files["memory"])).frame
    _, _, latest = split_by_time(frame)
    holdout = load_holdout(settings, name)
    assert len(holdout) == len(latest) == out["decision"]["holdout_rows"]
    assert holdout["ts"].min() == latest["ts"].min() > frame["ts"].min()

    # A file with negative fault counts fails the gate: nothing is trained or registered.
    bad = generate_memory(2500, seed=6)
    bad.loc[bad.index[::100], "MINFLT"] = -3.0
    (tmp_path / "bad").mkdir()
    to_export(bad, "memory").to_csv(tmp_path / "bad" / "linux_memory1.csv", index=False)
    with pytest.raises(QualityGateFailed, match=r"expect_column_values_to_be_between\(MINFLT\)"):
        retrain_toniot(settings, tmp_path / "bad", "memory", model_name=name)
    assert [r.version for r in list_models(settings) if r.name == name] == ["1"]


@pytest.mark.integration
def test_retrain_nslkdd_holds_out_hashed_rows_and_reports_test_files(
    settings: Settings, mlflow_server: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    s = settings.model_copy(
        update={"hosts": settings.hosts.model_copy(update={"min_training_rows": 100})}
    )
    name = registered_name(s, "test-pipeline-nslkdd")
    train, test = synthetic_kdd(1200, seed=2), synthetic_kdd(400, seed=3)
    for frame, file in ((train, FILES["train"]), (test, FILES["test"])):
        frame[list(COLUMNS)].to_csv(tmp_path / file, header=False, index=False)
    out = retrain_nslkdd(s, tmp_path, model_name=name, figures=False)
    assert out["decision"]["promoted"]
    run = MlflowClient(mlflow_server).get_run(out["training_run_id"])
    params, metrics = run.data.params, run.data.metrics
    loaded = load_nslkdd(tmp_path / FILES["train"])
    mask = nslkdd_holdout_mask(loaded, 0.1)
    assert int(params["holdout_artifact_rows"]) == mask.sum() > 0
    assert int(params["train_rows"]) + int(params["validation_rows"]) + mask.sum() == len(train)
    assert params["data.rows"] == "1200"
    assert len(params["data.sha256.KDDTrainplus_20Percent.txt"]) == 64
    assert 0.5 < metrics["test_KDDTestplus_roc_auc"] <= 1.0
    assert not any(k.startswith("test_KDDTest-21") for k in metrics)  # file absent
    pd.testing.assert_frame_equal(load_holdout(s, name), loaded[mask].reset_index(drop=True))
