"""MLflow tracking and registry of trained classifiers: log, register, promote, roll back.

The lifecycle, by registry alias (never stages):

1. :func:`log_training_run` logs one training run: parameters, validation/holdout/test
   metrics, the identity of the data (file SHA-256, row counts), the evaluation figures, the
   holdout rows (``holdout/holdout.parquet``) and the model -- ``trained.classifier()``, the
   fitted pipeline with its decision threshold built in, in MLflow's ``sklearn`` flavor.
2. :func:`register_challenger` registers that model as a new version of a registered model
   and points the ``challenger`` alias at it.
3. :func:`promote` scores ``@challenger`` and ``@champion`` on the same holdout and moves
   ``champion`` to the challenger only if it beats the champion by more than a margin and
   its training data passed the quality gate (the first challenger becomes champion on the
   quality gate alone). The champion it replaces gets the ``previous`` alias and is recorded
   on the new champion's version (tag ``previous_champion``), so :func:`rollback` can move
   ``champion`` back, one step at a time. Every decision is an MLflow run in the
   ``<prefix>promotions`` experiment.

Serving: ``mlflow.sklearn.load_model("models:/<name>@champion")`` returns the
:class:`~sklearn.model_selection.FixedThresholdClassifier`: ``predict_proba(raw)[:, 1]`` is
the attack score and ``predict(raw)`` applies the chosen threshold (``.threshold``). The
input is raw loader rows (:attr:`TrainedModel.input_example` names the columns; extra
columns are ignored). It unpickles functions and classes of :mod:`ml`, so the project must be
importable where the model is loaded.

Serialization: skops (MLflow's default, no arbitrary code at load for unknown types). The
pipeline holds types skops does not trust by default (the feature functions, the novelty
classifier, sklearn's tree structures); those from this project, scikit-learn and NumPy are
passed as ``skops_trusted_types``. A model holding any other untrusted type is logged with
cloudpickle instead (tag ``serialization_format``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from anomalake.errors import AnomalakeError
from anomalake.settings import Settings
from ml.tracking import experiment_name, use_tracking_server

if TYPE_CHECKING:  # ml.hosts (scikit-learn, matplotlib) is imported where it is used
    from mlflow import MlflowClient

    from ml.hosts import Metrics, TrainedModel

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
PROMOTIONS_EXPERIMENT = "promotions"
MODEL_ARTIFACT = "model"
HOLDOUT_DIR = "holdout"
HOLDOUT_FILE = "holdout.parquet"
FIGURES_DIR = "figures"
# Run and version tags.
TAG_MODEL_URI = "anomalake.model_uri"
TAG_LABEL = "label_column"
TAG_DATASET = "dataset"
TAG_QUALITY = "quality_passed"
TAG_FORMAT = "serialization_format"
TAG_PREVIOUS_CHAMPION = "previous_champion"
TAG_ROLLED_BACK = "rolled_back_at"
#: Run tags with this prefix are copied to the registered version and read where it is
#: served (:class:`ml.serving.LoadedModel`): its operating point, its feature version.
TAG_SERVING = "anomalake.serving."
# Metrics fields where a smaller value is better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"false_alarm_rate", "fp", "fn"})
PROMOTION_METRICS: tuple[str, ...] = (
    "roc_auc",
    "pr_auc",
    "f1",
    "precision",
    "recall",
    "accuracy",
    "false_alarm_rate",
)
# Modules whose types skops may load from a model file: this project's and the libraries
# the pipelines are made of (all installed code, none from the artifact).
TRUSTED_MODULES: tuple[str, ...] = ("ml.", "anomalake.", "sklearn.", "numpy.", "scipy.")


# --- names and the server ------------------------------------------------------------------


def metric_key(name: str) -> str:
    """``name`` as a valid MLflow metric/param key: ``+`` becomes ``plus``, others ``_``.

    MLflow keys allow alphanumerics, ``_ - . / :`` and spaces: ``test_KDDTest+_accuracy``
    becomes ``test_KDDTestplus_accuracy``.
    """
    return re.sub(r"[^\w.\-/: ]", "_", name.replace("+", "plus"))


def registered_name(settings: Settings, base: str) -> str:
    """The registered model name of ``base`` in this environment, e.g. ``local-hosts-nslkdd``."""
    return experiment_name(settings, base)


def model_uri(name: str, alias: str = CHAMPION) -> str:
    """``models:/<name>@<alias>``, the URI that loaders and the speed layer use."""
    return f"models:/{name}@{alias}"


def require_server(settings: Settings) -> None:
    """Fail fast, with the fix, when the MLflow server does not answer.

    (The MLflow client would otherwise retry for minutes before failing.)

    Raises:
        AnomalakeError: the tracking server's ``/health`` does not answer.
    """
    import requests

    uri = settings.mlflow.uri
    if not uri.startswith(("http://", "https://")):
        return
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        raise AnomalakeError(
            f"the MLflow server at {uri} does not answer ({type(exc).__name__})",
            "start it with `anomalake up mlflow`, or set ANOMALAKE_MLFLOW__TRACKING_URI "
            "to your server",
        ) from None


def client(settings: Settings) -> MlflowClient:
    """A tracking and registry client of the configured server (checked to answer)."""
    from mlflow import MlflowClient

    require_server(settings)
    return MlflowClient(tracking_uri=settings.mlflow.uri, registry_uri=settings.mlflow.uri)


def _registered_names(c: MlflowClient, prefix: str) -> list[str]:
    names: list[str] = []
    token = None
    while True:
        page = c.search_registered_models(
            filter_string=f"name LIKE '{prefix}%'", max_results=500, page_token=token
        )
        names += [m.name for m in page]
        token = page.token
        if not token:
            return sorted(names)


def resolve_model_name(settings: Settings, name: str) -> str:
    """The registered name ``name`` stands for: itself, or with the environment prefix.

    Raises:
        AnomalakeError: no registered model by either name.
    """
    from mlflow.exceptions import MlflowException

    c = client(settings)
    for candidate in (name, registered_name(settings, name)):
        try:
            c.get_registered_model(candidate)
            return candidate
        except MlflowException:
            continue
    known = _registered_names(c, settings.name_prefix)
    raise AnomalakeError(
        f"no registered model {name!r} at {settings.mlflow.uri}",
        f"use one of {', '.join(known)}" if known else "train one with `anomalake train hosts`",
    )


def alias_version(settings: Settings, model_name: str, alias: str) -> str | None:
    """The version ``<model_name>@<alias>`` points at (``None`` if the alias is not set).

    The speed layer polls this to notice a new champion and reload it.
    """
    return _alias_version(client(settings), model_name, alias)


def _alias_version(c: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(c.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


# --- logging a training run ------------------------------------------------------------------


def _trusted_types(model: Any) -> list[str] | None:
    """The untrusted types skops finds in ``model`` if all may be trusted, else ``None``."""
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    if all(t.startswith(TRUSTED_MODULES) for t in found):
        return sorted(found)
    log.warning("skops cannot vouch for %s; logging the model with cloudpickle", found)
    return None


def _requirements(serialization_format: str) -> list[str]:
    import sklearn
    import skops

    reqs = [
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
    ]
    if serialization_format == "skops":
        reqs.append(f"skops=={skops.__version__}")
    else:
        import cloudpickle

        reqs.append(f"cloudpickle=={cloudpickle.__version__}")
    return reqs


def _prefixed(prefix: str, metrics: Metrics) -> dict[str, float]:
    return {metric_key(f"{prefix}_{k}"): v for k, v in metrics.as_dict().items()}


def frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's values and column names (row order matters, the index does not)."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def log_training_run(
    trained: TrainedModel,
    settings: Settings,
    *,
    experiment: str,
    data_identity: dict[str, str],
    test_frames: dict[str, pd.DataFrame] | None = None,
    holdout: pd.DataFrame | None = None,
    quality_passed: bool | None = None,
    run_name: str | None = None,
    figures: bool = True,
) -> str:
    """Log one trained model, its metrics, data identity and figures as an MLflow run.

    Logged:

    * params: ``trained.params``, the threshold, dataset, label column, and every
      ``data_identity`` entry as ``data.<key>`` (e.g. ``data.sha256.<file>``, ``data.rows``);
    * metrics: ``val_*`` (the validation split the threshold was chosen on), ``holdout_*``
      (the ``holdout`` frame, or ``trained.holdout``), ``test_<name>_*`` per test frame
      (key sanitised by :func:`metric_key`), ``train_seconds``;
    * tags: ``dataset``, ``label_column``, ``quality_passed``, ``serialization_format``,
      ``anomalake.model_uri`` (the logged model, for :func:`register_challenger`);
    * artifacts: ``model`` (sklearn flavor of ``trained.classifier()``, with a signature
      inferred from the input example and its 0/1 predictions), ``figures/*.png``
      (:func:`ml.hosts.evaluation_figures` on the validation split) and
      ``holdout/holdout.parquet`` (the holdout rows, which promotion re-scores; params
      ``holdout_artifact_rows`` and ``holdout_artifact_sha256`` identify them).

    Args:
        trained: The trained model.
        settings: Where the tracking server is.
        experiment: Experiment name without the environment prefix, e.g. ``hosts-nslkdd``.
        data_identity: What identifies the training data (file hashes, row counts).
        test_frames: Labelled test frames by name, reported only (never used to choose).
        holdout: Labelled rows no model was trained on, logged for promotion.
        quality_passed: The training data's quality-gate outcome, if it was checked.
        run_name: The run's name; ``<dataset>-<model>`` by default.
        figures: Log the evaluation figures (permutation importance takes seconds).

    Returns:
        The run id.
    """
    import mlflow
    from mlflow.models import infer_signature

    from ml.hosts import evaluate, evaluation_figures

    require_server(settings)
    use_tracking_server(settings, experiment)
    classifier = trained.classifier()
    trusted = _trusted_types(classifier)
    serialization = "skops" if trusted is not None else "cloudpickle"
    example = trained.input_example
    signature = infer_signature(example, classifier.predict(example))
    with mlflow.start_run(run_name=run_name or f"{trained.dataset}-{trained.model_name}") as run:
        mlflow.set_tags(
            {
                TAG_DATASET: trained.dataset,
                TAG_LABEL: trained.label_column,
                TAG_FORMAT: serialization,
                TAG_QUALITY: "unchecked" if quality_passed is None else str(quality_passed),
            }
        )
        params: dict[str, Any] = {metric_key(k): v for k, v in trained.params.items()}
        params |= {
            "threshold": trained.threshold,
            "dataset": trained.dataset,
            "label_column": trained.label_column,
        }
        params |= {metric_key(f"data.{k}"): v for k, v in data_identity.items()}
        mlflow.log_params(params)
        info = mlflow.sklearn.log_model(
            classifier,
            name=MODEL_ARTIFACT,
            serialization_format=serialization,
            skops_trusted_types=trusted,
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(serialization),
            metadata={"threshold": trained.threshold, "label_column": trained.label_column},
        )
        mlflow.set_tag(TAG_MODEL_URI, info.model_uri)
        metrics = _prefixed("val", trained.validation)
        metrics["train_seconds"] = trained.train_seconds
        held = evaluate(trained, holdout) if holdout is not None else trained.holdout
        if held is not None:
            metrics |= _prefixed("holdout", held)
        for name, frame in (test_frames or {}).items():
            metrics |= _prefixed(f"test_{name}", evaluate(trained, frame))
        mlflow.log_metrics(metrics)
        if holdout is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / HOLDOUT_FILE
                holdout.reset_index(drop=True).to_parquet(path, index=False)
                mlflow.log_artifact(str(path), artifact_path=HOLDOUT_DIR)
            mlflow.log_params(
                {
                    "holdout_artifact_rows": len(holdout),
                    "holdout_artifact_sha256": frame_digest(holdout),
                }
            )
        if figures:
            for file_name, fig in evaluation_figures(trained).items():
                mlflow.log_figure(fig, f"{FIGURES_DIR}/{file_name}")
    return str(run.info.run_id)


def register_challenger(settings: Settings, run_id: str, model_name: str) -> str:
    """Register the model of run ``run_id`` as a new version of ``model_name``; alias it.

    The version is tagged with the run's quality-gate outcome, dataset and label column
    and its serving tags (:data:`TAG_SERVING`), and gets the ``challenger`` alias (moved
    from any earlier challenger).

    Returns:
        The new version number.
    """
    import mlflow

    c = client(settings)
    run = c.get_run(run_id)
    uri = run.data.tags.get(TAG_MODEL_URI)
    if uri is None:
        raise AnomalakeError(
            f"run {run_id} logged no model", "log it with ml.registry.log_training_run"
        )
    mlflow.set_registry_uri(settings.mlflow.uri)
    tags = {
        k: v
        for k, v in run.data.tags.items()
        if k in (TAG_QUALITY, TAG_DATASET, TAG_LABEL) or k.startswith(TAG_SERVING)
    }
    version = mlflow.register_model(uri, model_name, tags={**tags, "run_id": run_id})
    c.set_registered_model_alias(model_name, CHALLENGER, version.version)
    return str(version.version)


# --- promotion and rollback ------------------------------------------------------------------


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the challenger became champion, and why.

    Attributes:
        model_name: The registered model.
        promoted: ``champion`` now points at the challenger's version.
        reason: Why, in one sentence.
        metric: The compared :class:`~ml.hosts.Metrics` field.
        margin: How much better the challenger had to be.
        quality_passed: The challenger's training data passed the quality gate.
        challenger_version: The version scored as challenger.
        champion_version: The champion's version before the decision (``None``: none yet).
        challenger_score: The challenger's ``metric`` on the holdout.
        champion_score: The champion's (``None`` without a champion).
        holdout_rows: Rows both were scored on.
        holdout_sha256: :func:`frame_digest` of those rows.
        run_id: The MLflow run of the decision (experiment ``<prefix>promotions``).
    """

    model_name: str
    promoted: bool
    reason: str
    metric: str
    margin: float
    quality_passed: bool
    challenger_version: str
    champion_version: str | None
    challenger_score: float
    champion_score: float | None
    holdout_rows: int
    holdout_sha256: str
    run_id: str

    @property
    def champion_after(self) -> str | None:
        """The champion's version after the decision."""
        return self.challenger_version if self.promoted else self.champion_version

    def as_dict(self) -> dict[str, Any]:
        """The fields and ``champion_after``, JSON-ready."""
        return {**asdict(self), "champion_after": self.champion_after}


def _load(name: str, version: str) -> Any:
    """One registered version, by number (an alias could move while it is being read)."""
    import mlflow

    return mlflow.sklearn.load_model(f"models:/{name}/{version}")


def _score(model: Any, holdout: pd.DataFrame, label_column: str) -> Metrics:
    """Metrics of a loaded classifier on the holdout, at the threshold it was logged with.

    The score is the probability of anything but the first class: the positive class's of
    a two-class model, "any episode" of a classifier whose class 0 is normal.
    """
    from threadpoolctl import threadpool_limits

    from ml.hosts import score_metrics

    with threadpool_limits(limits=1):
        scores = 1.0 - np.asarray(model.predict_proba(holdout)[:, 0], dtype=float)
    threshold = float(getattr(model, "threshold", 0.5))
    return score_metrics(holdout[label_column].to_numpy().astype(bool), scores, threshold)


def _beats(challenger: float, champion: float, metric: str, margin: float) -> bool:
    if metric in LOWER_IS_BETTER:
        return challenger < champion - margin
    return challenger > champion + margin


def _decide(
    *,
    metric: str,
    margin: float,
    quality_passed: bool,
    challenger_version: str,
    champion_version: str | None,
    challenger: Metrics,
    champion: Metrics | None,
    rolled_back: bool,
) -> tuple[bool, str]:
    ours = float(getattr(challenger, metric))
    if champion_version == challenger_version:
        return False, f"version {challenger_version} is already the champion"
    if rolled_back:
        return False, (
            f"version {challenger_version} was rolled back from champion; train a new challenger"
        )
    if not quality_passed:
        return False, "the challenger's training data failed the quality gate"
    if champion is None:
        return True, "no champion yet: the first challenger that passed the quality gate"
    theirs = float(getattr(champion, metric))
    if math.isnan(ours) or math.isnan(theirs):
        return False, f"{metric} is undefined on the holdout (it lacks a class)"
    better = "lower" if metric in LOWER_IS_BETTER else "higher"
    if _beats(ours, theirs, metric, margin):
        return True, (
            f"challenger {metric} {ours:.4f} beats champion {theirs:.4f} by more than "
            f"{margin:g} ({better} is better)"
        )
    return False, (
        f"challenger {metric} {ours:.4f} does not beat champion {theirs:.4f} by more than "
        f"{margin:g} ({better} is better)"
    )


def promote(
    settings: Settings,
    model_name: str,
    *,
    holdout: pd.DataFrame,
    label_column: str,
    metric: str = "roc_auc",
    margin: float,
    quality_passed: bool,
) -> PromotionDecision:
    """Score ``@challenger`` and ``@champion`` on one holdout; promote if clearly better.

    The challenger is promoted (``champion`` moves to its version, the replaced champion
    gets the ``previous`` alias and is recorded as the new version's ``previous_champion``
    tag) only if ``quality_passed`` and either there is no champion yet or its ``metric``
    beats the champion's by more than ``margin`` (lower is better for ``false_alarm_rate``).
    A challenger that already is the champion, or was rolled back, is never promoted. Each
    model is scored at its own logged threshold. The decision, both scores and the reason
    are logged as a run of the ``<prefix>promotions`` experiment and as tags of the
    challenger's version.

    Args:
        settings: Where the tracking server is.
        model_name: The registered model (full name, e.g. ``local-hosts-nslkdd``).
        holdout: Labelled raw rows neither model was trained on.
        label_column: The 0/1 column of ``holdout``.
        metric: One of :data:`PROMOTION_METRICS`.
        margin: How much better (in ``metric``) the challenger must be.
        quality_passed: Whether the challenger's training data passed the quality gate.

    Raises:
        AnomalakeError: unknown metric, model or label column, or no challenger.
    """
    import mlflow

    if metric not in PROMOTION_METRICS:
        raise AnomalakeError(f"unknown metric {metric!r}", f"use one of {PROMOTION_METRICS}")
    if label_column not in holdout.columns:
        raise AnomalakeError(f"the holdout has no {label_column!r} column", "pass labelled rows")
    name = resolve_model_name(settings, model_name)
    c = client(settings)
    challenger_version = _alias_version(c, name, CHALLENGER)
    if challenger_version is None:
        raise AnomalakeError(
            f"{name} has no {CHALLENGER} version", "train one with `anomalake train hosts`"
        )
    champion_version = _alias_version(c, name, CHAMPION)
    mlflow.set_tracking_uri(settings.mlflow.uri)
    mlflow.set_registry_uri(settings.mlflow.uri)
    challenger = _score(_load(name, challenger_version), holdout, label_column)
    champion = (
        _score(_load(name, champion_version), holdout, label_column) if champion_version else None
    )
    version = c.get_model_version(name, challenger_version)
    promoted, reason = _decide(
        metric=metric,
        margin=margin,
        quality_passed=quality_passed,
        challenger_version=challenger_version,
        champion_version=champion_version,
        challenger=challenger,
        champion=champion,
        rolled_back=TAG_ROLLED_BACK in version.tags,
    )
    digest = frame_digest(holdout)
    use_tracking_server(settings, PROMOTIONS_EXPERIMENT)
    with mlflow.start_run(run_name=f"promote {name} v{challenger_version}") as run:
        mlflow.log_params(
            {
                "model_name": name,
                "metric": metric,
                "margin": margin,
                "quality_passed": quality_passed,
                "challenger_version": challenger_version,
                "champion_version": champion_version or "none",
                "holdout_rows": len(holdout),
                "holdout_sha256": digest,
            }
        )
        scores = _prefixed("challenger", challenger)
        if champion is not None:
            scores |= _prefixed("champion", champion)
        mlflow.log_metrics(scores)
        mlflow.set_tags({"decision": "promoted" if promoted else "refused", "reason": reason})
        decision = PromotionDecision(
            model_name=name,
            promoted=promoted,
            reason=reason,
            metric=metric,
            margin=margin,
            quality_passed=quality_passed,
            challenger_version=challenger_version,
            champion_version=champion_version,
            challenger_score=float(getattr(challenger, metric)),
            champion_score=None if champion is None else float(getattr(champion, metric)),
            holdout_rows=len(holdout),
            holdout_sha256=digest,
            run_id=str(run.info.run_id),
        )
        mlflow.log_dict(decision.as_dict(), "decision.json")
    if promoted:
        if champion_version is not None:
            c.set_model_version_tag(
                name, challenger_version, TAG_PREVIOUS_CHAMPION, champion_version
            )
            c.set_registered_model_alias(name, PREVIOUS, champion_version)
        c.set_registered_model_alias(name, CHAMPION, challenger_version)
    for key, value in {
        "promotion": "promoted" if promoted else "refused",
        "promotion_reason": reason,
        "promotion_run_id": decision.run_id,
    }.items():
        c.set_model_version_tag(name, challenger_version, key, value)
    return decision


def load_holdout(settings: Settings, model_name: str, alias: str = CHALLENGER) -> pd.DataFrame:
    """The holdout rows logged with the run of ``<model_name>@<alias>``.

    Raises:
        AnomalakeError: no such alias, or its run logged no holdout.
    """
    import mlflow

    c = client(settings)
    version = _alias_version(c, model_name, alias)
    if version is None:
        raise AnomalakeError(
            f"{model_name} has no {alias} version", "train one with `anomalake train hosts`"
        )
    run_id = c.get_model_version(model_name, version).run_id
    mlflow.set_tracking_uri(settings.mlflow.uri)
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{HOLDOUT_DIR}/{HOLDOUT_FILE}"
        )
    except Exception as exc:  # MlflowException or an OSError from the artifact store
        raise AnomalakeError(
            f"run {run_id} of {model_name} v{version} logged no holdout ({exc})",
            "retrain with `anomalake train hosts`, which logs one",
        ) from None
    return pd.read_parquet(local)


def promote_challenger(
    settings: Settings,
    model_name: str,
    *,
    metric: str | None = None,
    margin: float | None = None,
) -> PromotionDecision:
    """:func:`promote` with the challenger's own logged holdout and quality-gate outcome.

    The holdout is the ``holdout/holdout.parquet`` artifact of the challenger's training
    run: rows that run held out of training. Its label column and quality-gate outcome are
    the version's tags. ``metric`` and ``margin`` default to ``settings.hosts``.
    """
    name = resolve_model_name(settings, model_name)
    c = client(settings)
    version = _alias_version(c, name, CHALLENGER)
    if version is None:
        raise AnomalakeError(
            f"{name} has no {CHALLENGER} version", "train one with `anomalake train hosts`"
        )
    tags = c.get_model_version(name, version).tags
    return promote(
        settings,
        name,
        holdout=load_holdout(settings, name, CHALLENGER),
        label_column=tags.get(TAG_LABEL, "label"),
        metric=metric or settings.hosts.promotion_metric,
        margin=settings.hosts.promotion_margin if margin is None else margin,
        quality_passed=tags.get(TAG_QUALITY) == "True",
    )


@dataclass(frozen=True)
class Rollback:
    """``champion`` moved back: from which version to which, and the run that records it."""

    model_name: str
    from_version: str
    to_version: str
    run_id: str


def rollback(settings: Settings, model_name: str) -> Rollback:
    """Move ``champion`` back to the version it replaced.

    The rolled-back version is tagged (``rolled_back_at``) so that :func:`promote` will not
    promote it again; ``previous`` moves one step further back (or is removed). Logged as a
    run of the ``<prefix>promotions`` experiment.

    Raises:
        AnomalakeError: unknown model, no champion, or no previous champion.
    """
    import mlflow

    name = resolve_model_name(settings, model_name)
    c = client(settings)
    current = _alias_version(c, name, CHAMPION)
    if current is None:
        raise AnomalakeError(
            f"{name} has no {CHAMPION}", "promote one with `anomalake models promote`"
        )
    previous = c.get_model_version(name, current).tags.get(TAG_PREVIOUS_CHAMPION)
    if previous is None:
        raise AnomalakeError(
            f"{name} v{current} replaced no earlier champion: nothing to roll back to",
            "promote a better challenger instead",
        )
    c.set_registered_model_alias(name, CHAMPION, previous)
    c.set_model_version_tag(name, current, TAG_ROLLED_BACK, datetime.now(UTC).isoformat())
    before = c.get_model_version(name, previous).tags.get(TAG_PREVIOUS_CHAMPION)
    if before is not None:
        c.set_registered_model_alias(name, PREVIOUS, before)
    else:
        c.delete_registered_model_alias(name, PREVIOUS)
    use_tracking_server(settings, PROMOTIONS_EXPERIMENT)
    with mlflow.start_run(run_name=f"rollback {name} v{current} -> v{previous}") as run:
        mlflow.log_params({"model_name": name, "from_version": current, "to_version": previous})
        mlflow.set_tags({"decision": "rollback"})
    return Rollback(name, current, previous, str(run.info.run_id))


# --- listing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVersionRow:
    """One version of a registered model, for ``anomalake models list``.

    Attributes:
        name: Registered model name.
        version: Version number.
        aliases: Its aliases (``champion``, ``challenger``, ``previous``).
        run_id: The training run.
        metric: The key metric's name (``holdout_<promotion metric>``).
        value: Its value in the training run (``None`` if not logged).
        created: When the version was registered (UTC).
    """

    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    metric: str
    value: float | None
    created: datetime


def list_models(
    settings: Settings, *, metric: str | None = None, prefix: str | None = None
) -> list[ModelVersionRow]:
    """Every version of every registered model whose name starts with the environment prefix.

    Args:
        settings: Where the tracking server is.
        metric: Key metric (a :class:`~ml.hosts.Metrics` field) read from each version's
            training run as ``holdout_<metric>``; ``settings.hosts.promotion_metric``.
        prefix: Name prefix; ``settings.name_prefix`` by default.

    Returns:
        Rows by model name, newest version first.
    """
    c = client(settings)
    key = f"holdout_{metric or settings.hosts.promotion_metric}"
    rows: list[ModelVersionRow] = []
    for name in _registered_names(c, settings.name_prefix if prefix is None else prefix):
        aliases = c.get_registered_model(name).aliases
        token = None
        versions = []
        while True:
            page = c.search_model_versions(f"name='{name}'", max_results=1000, page_token=token)
            versions += list(page)
            token = page.token
            if not token:
                break
        for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
            value = c.get_run(v.run_id).data.metrics.get(key) if v.run_id else None
            rows.append(
                ModelVersionRow(
                    name=name,
                    version=str(v.version),
                    aliases=tuple(
                        sorted(a for a, n in aliases.items() if str(n) == str(v.version))
                    ),
                    run_id=v.run_id,
                    metric=key,
                    value=value,
                    created=datetime.fromtimestamp(v.creation_timestamp / 1000, tz=UTC),
                )
            )
    return rows
