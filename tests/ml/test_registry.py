from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalake.errors import AnomalakeError
from anomalake.generators.hosts import generate_memory, write_host_files
from anomalake.loaders.toniot import load_toniot
from anomalake.settings import Settings
from ml.hosts import TrainedModel, evaluate, train_toniot
from ml.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    PROMOTIONS_EXPERIMENT,
    list_models,
    load_holdout,
    log_training_run,
    metric_key,
    model_uri,
    promote,
    promote_challenger,
    register_challenger,
    registered_name,
    rollback,
)

pytestmark = pytest.mark.integration

MARGIN = 0.01


def test_metric_keys_are_valid_mlflow_names() -> None:
    assert metric_key("test_KDDTest+_accuracy") == "test_KDDTestplus_accuracy"
    assert metric_key("test_KDDTest-21_recall@0.05") == "test_KDDTest-21_recall_0.05"


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    later = datetime(2019, 4, 10, tzinfo=UTC)
    return {
        "train": generate_memory(3000, seed=1, attack_fraction=0.15),
        # Later rows that no model below is trained on: the one holdout all are scored on.
        "holdout": generate_memory(1500, seed=7, attack_fraction=0.15, start=later),
    }


def _register(
    settings: Settings, trained: TrainedModel, name: str, holdout: pd.DataFrame, **kw: object
) -> tuple[str, str]:
    run_id = log_training_run(
        trained,
        settings,
        experiment="test-hosts-registry",
        data_identity={"sha256.memory.csv": "0" * 64, "rows": "3000"},
        holdout=holdout,
        **kw,  # type: ignore[arg-type]
    )
    return run_id, register_challenger(settings, run_id, name)


def _aliases(settings: Settings, name: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return dict(MlflowClient(settings.mlflow.uri).get_registered_model(name).aliases)


def test_challengers_are_promoted_only_when_better_and_clean_and_rollback_restores(
    settings: Settings, mlflow_server: str, data: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    import mlflow
    from mlflow import MlflowClient

    c = MlflowClient(mlflow_server)
    name = registered_name(settings, "test-hosts-lifecycle")
    assert name == "local-test-hosts-lifecycle"
    train, holdout = data["train"], data["holdout"]
    check = {"holdout": holdout, "label_column": "label", "margin": MARGIN}

    # v1: trained on few rows; the first challenger that passed the gate becomes champion.
    small = train_toniot(train.head(600), "memory", seed=0)
    run1, v1 = _register(settings, small, name, holdout, quality_passed=True, figures=True)
    assert v1 == "1" and _aliases(settings, name) == {CHALLENGER: "1"}
    run = c.get_run(run1)
    assert run.data.params["data.sha256.memory.csv"] == "0" * 64
    assert float(run.data.params["threshold"]) == pytest.approx(small.threshold)
    assert run.data.metrics["val_roc_auc"] == pytest.approx(small.validation.roc_auc)
    assert run.data.metrics["holdout_roc_auc"] == pytest.approx(evaluate(small, holdout).roc_auc)
    assert run.data.tags["serialization_format"] == "skops"
    assert run.data.tags["quality_passed"] == "True"
    figures = {a.path for a in c.list_artifacts(run1, "figures")}
    assert {"figures/roc.png", "figures/confusion.png"} <= figures
    logged = load_holdout(settings, name)
    assert len(logged) == len(holdout) and logged["label"].sum() == holdout["label"].sum()

    first = promote(settings, name, **check, quality_passed=True)  # type: ignore[arg-type]
    assert first.promoted and first.champion_version is None and "no champion" in first.reason
    assert first.challenger_score == pytest.approx(evaluate(small, holdout).roc_auc)
    assert _aliases(settings, name) == {CHALLENGER: "1", CHAMPION: "1"}

    # v2: shuffled labels, no better than chance: refused, champion unchanged.
    rng = np.random.default_rng(0)
    noise = train.assign(label=rng.permutation(train["label"].to_numpy()))
    _, v2 = _register(settings, train_toniot(noise, "memory"), name, holdout, figures=False)
    worse = promote(settings, name, **check, quality_passed=True)  # type: ignore[arg-type]
    assert (v2, worse.promoted, worse.champion_version) == ("2", False, "1")
    assert worse.challenger_score < 0.6 < first.challenger_score == worse.champion_score
    assert "does not beat champion" in worse.reason
    assert _aliases(settings, name) == {CHALLENGER: "2", CHAMPION: "1"}
    record = c.get_run(worse.run_id)
    assert record.data.tags["decision"] == "refused"
    assert record.data.tags["reason"] == worse.reason
    assert record.data.metrics["champion_roc_auc"] == pytest.approx(first.challenger_score)
    experiment = c.get_experiment(record.info.experiment_id).name
    assert experiment == f"local-{PROMOTIONS_EXPERIMENT}"

    # v3: trained on all rows, clearly better, but its data failed the gate: refused.
    full = train_toniot(train, "memory", seed=0)
    _, v3 = _register(settings, full, name, holdout, quality_passed=False, figures=False)
    dirty = promote(settings, name, **check, quality_passed=False)  # type: ignore[arg-type]
    assert dirty.challenger_score > dirty.champion_score + MARGIN  # type: ignore[operator]
    assert not dirty.promoted and "quality gate" in dirty.reason
    assert _aliases(settings, name)[CHAMPION] == "1"

    # The same v3 with a passed gate is promoted; v1 becomes `previous`.
    better = promote(settings, name, **check, quality_passed=True)  # type: ignore[arg-type]
    assert better.promoted and (better.champion_version, better.champion_after) == ("1", "3")
    assert "beats champion" in better.reason
    assert _aliases(settings, name) == {CHALLENGER: "3", CHAMPION: "3", PREVIOUS: "1"}
    assert promote(settings, name, **check, quality_passed=True).reason == (  # type: ignore[arg-type]
        "version 3 is already the champion"
    )

    # The champion loads from the registry and scores raw loader rows like the trained model.
    files = write_host_files(tmp_path, 300, seed=11, activities=("memory",))
    raw = load_toniot(files["memory"])
    assert {"ts", "PID", "label", "type"} <= set(raw.columns)
    mlflow.set_tracking_uri(mlflow_server)
    served = mlflow.sklearn.load_model(model_uri(name, CHAMPION))
    assert served.threshold == pytest.approx(full.threshold)
    np.testing.assert_allclose(served.predict_proba(raw)[:, 1], full.scores(raw))
    np.testing.assert_array_equal(served.predict(raw), full.predict(raw).astype(int))
    pyfunc = mlflow.pyfunc.load_model(model_uri(name, CHAMPION))
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(raw)), full.predict(raw).astype(int))

    # Rollback restores v1; v3 is never promoted again; there is nothing before v1.
    back = rollback(settings, name)
    assert (back.from_version, back.to_version) == ("3", "1")
    assert _aliases(settings, name) == {CHALLENGER: "3", CHAMPION: "1"}
    again = promote(settings, name, **check, quality_passed=True)  # type: ignore[arg-type]
    assert not again.promoted and "rolled back" in again.reason
    with pytest.raises(AnomalakeError, match="nothing to roll back to"):
        rollback(settings, name)

    rows = [r for r in list_models(settings) if r.name == name]
    assert [(r.version, r.aliases) for r in rows] == [
        ("3", (CHALLENGER,)),
        ("2", ()),
        ("1", (CHAMPION,)),
    ]
    assert rows[2].metric == "holdout_roc_auc"
    assert rows[2].value == pytest.approx(first.challenger_score)


def test_promote_challenger_reuses_the_logged_holdout_and_quality_outcome(
    settings: Settings, mlflow_server: str, data: dict[str, pd.DataFrame]
) -> None:
    name = registered_name(settings, "test-hosts-logged-holdout")
    trained = train_toniot(data["train"], "memory", seed=0)
    _register(settings, trained, name, data["holdout"], quality_passed=False, figures=False)
    refused = promote_challenger(settings, name, margin=0.0)
    assert not refused.promoted and refused.holdout_rows == len(data["holdout"])
    assert refused.challenger_score == pytest.approx(evaluate(trained, data["holdout"]).roc_auc)
    _register(settings, trained, name, data["holdout"], quality_passed=True, figures=False)
    # Promote by the short name: the environment prefix is added.
    first = promote_challenger(settings, "test-hosts-logged-holdout", metric="f1")
    assert first.promoted and first.metric == "f1" and first.challenger_version == "2"
    with pytest.raises(AnomalakeError, match="unknown metric"):
        promote_challenger(settings, name, metric="speed")
    with pytest.raises(AnomalakeError, match="no registered model 'nope'"):
        promote_challenger(settings, "nope")
