"""MLflow tracking set-up from settings: one place for the URI and the names."""

from __future__ import annotations

from anomalake.settings import Settings


def experiment_name(settings: Settings, name: str) -> str:
    """Experiment (and model) names carry the environment, e.g. ``local-markets``."""
    return f"{settings.name_prefix}{name}"


def use_tracking_server(settings: Settings, experiment: str) -> str:
    """Point the MLflow client at the configured server and experiment; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow.uri)
    mlflow.set_registry_uri(settings.mlflow.uri)
    exp = mlflow.set_experiment(experiment_name(settings, experiment))
    return str(exp.experiment_id)
