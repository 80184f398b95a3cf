"""Retrain the hosts classifiers: load -> quality gate -> train -> log -> register -> promote.

The job edge of the model lifecycle, used by ``anomalake train hosts`` and the
``hosts_models`` DAG. Each step is a function, so the DAG can run them as separate tasks;
:func:`retrain` (and :func:`retrain_nslkdd`, :func:`retrain_toniot`) runs them all.

The holdout that promotion compares champion and challenger on must be rows that *neither*
model was trained on, and never the test files (they stay for reporting):

* NSL-KDD: a fixed share of the training file chosen by a hash of each row's content
  (:func:`nslkdd_holdout_mask`), removed before training. The same record falls in the
  holdout in every retraining, whatever else the file holds, so a champion trained on an
  earlier version of the file by this pipeline never saw it either; a record repeated in
  the file cannot be on both sides. The validation split inside :func:`ml.hosts.train_nslkdd`
  would not do: it is redrawn per training, so the champion may have trained on the
  challenger's validation rows, and the challenger chose its threshold on them.
  ``KDDTest+``/``KDDTest-21``, when in the folder, are scored and logged as test metrics
  only.
* ToN-IoT: the latest slice by time (:func:`ml.hosts.split_by_time`, the part
  :func:`ml.hosts.train_toniot` reports ``holdout`` metrics on). A deployed model only ever
  sees later data, and a champion trained on an earlier capture trained only on rows
  before it (on the same capture, on the same earlier rows).

Holdouts larger than ``settings.hosts.holdout_max_rows`` are sampled down (seeded). The
holdout is logged with the training run, so ``anomalake models promote`` can re-run the
comparison later on exactly those rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from anomalake.errors import AnomalakeError
from anomalake.loaders import nslkdd as kdd
from anomalake.loaders import toniot
from anomalake.settings import Settings

if TYPE_CHECKING:  # Great Expectations and pyspark load only where the gate runs
    from expectations.runner import QualityResult

NSLKDD = "nslkdd"
TONIOT = "toniot"
TEST_FILES: dict[str, str] = {"KDDTest+": kdd.FILES["test"], "KDDTest-21": kdd.FILES["test21"]}
_HASH_BUCKETS = 10_000


@dataclass(frozen=True)
class Target:
    """One model to (re)train: which data, where it is, and what it is registered as.

    Attributes:
        key: ``nslkdd`` or ``toniot-<activity>``.
        dataset: ``nslkdd`` or ``toniot``.
        activity: The ToN-IoT activity (``memory``/``process``); ``None`` for NSL-KDD.
        path: The NSL-KDD folder, or a ToN-IoT CSV or folder.
        experiment: MLflow experiment without the environment prefix (``hosts-nslkdd``).
        model_name: Registered model name, with the prefix (``local-hosts-nslkdd``).
    """

    key: str
    dataset: str
    activity: str | None
    path: Path
    experiment: str
    model_name: str


def target(
    settings: Settings, key: str, *, path: Path | None = None, model_name: str | None = None
) -> Target:
    """The :class:`Target` ``key`` (``nslkdd``, ``toniot-memory``, ``toniot-process``).

    Args:
        settings: Data paths and model names (``settings.hosts``).
        key: What to train.
        path: The data; ``settings.nslkdd_path`` / ``settings.toniot_path`` by default.
        model_name: Registered name; ``<prefix><settings.hosts.*_model>`` by default.

    Raises:
        AnomalakeError: unknown key.
    """
    h = settings.hosts
    if key == NSLKDD:
        base, dataset, activity, default = h.nslkdd_model, NSLKDD, None, settings.nslkdd_path
    elif key.startswith(f"{TONIOT}-") and key.split("-", 1)[1] in ("memory", "process"):
        activity = key.split("-", 1)[1]
        base, dataset, default = (
            h.toniot_model.format(stream=activity),
            TONIOT,
            settings.toniot_path,
        )
    else:
        raise AnomalakeError(
            f"unknown hosts training target {key!r}",
            "use nslkdd, toniot-memory or toniot-process (ANOMALAKE_HOSTS__TARGETS)",
        )
    return Target(
        key=key,
        dataset=dataset,
        activity=activity,
        path=path or default,
        experiment=base,
        model_name=model_name or f"{settings.name_prefix}{base}",
    )


def targets(settings: Settings) -> list[Target]:
    """The targets the retraining DAG trains (``settings.hosts.targets``)."""
    return [target(settings, key) for key in settings.hosts.targets]


# --- data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingData:
    """Loaded training rows and what identifies them.

    Attributes:
        frame: The rows as the loader returns them.
        files: The files they were read from.
        identity: ``sha256.<file>`` per file, ``rows`` and ``path`` (strings, for MLflow).
    """

    frame: pd.DataFrame
    files: tuple[Path, ...]
    identity: dict[str, str]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_help(t: Target) -> str:
    env = "NSLKDD_PATH" if t.dataset == NSLKDD else "TONIOT_PATH"
    return f"point ANOMALAKE_HOSTS__{env} (or the PATH argument) at the {t.dataset} data"


def load_training_data(t: Target) -> TrainingData:
    """Load the target's training rows (NSL-KDD: ``KDDTrain+_20Percent.txt`` of the folder).

    Raises:
        AnomalakeError: the data is missing or unreadable (the message names the setting).
    """
    if t.dataset == NSLKDD:
        file = t.path / kdd.FILES["train"] if t.path.is_dir() else t.path
        if not file.is_file():
            raise AnomalakeError(f"no NSL-KDD training file at {file}", _data_help(t))
        frame = kdd.load_nslkdd(file)
        files: tuple[Path, ...] = (file,)
    else:
        assert t.activity is not None
        if not t.path.exists():
            raise AnomalakeError(f"no ToN-IoT data at {t.path}", _data_help(t))
        files = tuple(toniot.toniot_files(t.path, t.activity)) if t.path.is_dir() else (t.path,)
        frame = toniot.load_toniot(t.path, t.activity)
    identity = {f"sha256.{f.name}": file_sha256(f) for f in files}
    identity |= {"rows": str(len(frame)), "path": str(t.path)}
    return TrainingData(frame=frame, files=files, identity=identity)


def check_training_data(
    settings: Settings, t: Target, data: TrainingData, *, run_label: str | None = None
) -> QualityResult:
    """Validate the rows with the target's suite; Data Docs under ``reports/quality``.

    Raises:
        QualityGateFailed: a critical expectation failed (nothing may be trained on them).
    """
    from expectations.hosts import NSLKDD_SUITE, nslkdd_suite, toniot_suite, toniot_suite_name
    from expectations.runner import enforce, validate

    rows = settings.hosts.min_training_rows
    if t.dataset == NSLKDD:
        suite, name = nslkdd_suite(min_rows=rows), NSLKDD_SUITE
    else:
        assert t.activity is not None
        suite, name = toniot_suite(t.activity, min_rows=rows), toniot_suite_name(t.activity)
    result = validate(
        data.frame,
        suite,
        name=name,
        context_dir=settings.reports_dir / "quality",
        run_label=run_label or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return enforce(result)


# --- holdout and training ------------------------------------------------------------------


def nslkdd_holdout_mask(frame: pd.DataFrame, fraction: float) -> np.ndarray:
    """``True`` for the rows of the fixed, content-hashed NSL-KDD holdout.

    A row is in the holdout when the hash of its 41 features and class falls in the first
    ``fraction`` of the hash range: the same record is always on the same side, in any file
    and any retraining (for one pandas hashing implementation). Values are hashed in a
    canonical form (numbers as floats rounded to 9 decimals, text stripped), so a column read
    as integers from one file and as floats from another, or a float parsed a unit in the last
    place apart, hashes alike.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    text = (*kdd.SYMBOLIC, "class")
    canonical = pd.DataFrame(
        {
            c: frame[c].astype(str).str.strip()
            if c in text
            else pd.to_numeric(frame[c], errors="coerce").astype(float).round(9)
            for c in (*kdd.FEATURES, "class")
        }
    )
    hashes = pd.util.hash_pandas_object(canonical, index=False)
    return np.asarray(hashes.to_numpy() % _HASH_BUCKETS < fraction * _HASH_BUCKETS)


def _cap(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=seed).sort_index()


def _test_frames(t: Target) -> dict[str, pd.DataFrame]:
    if t.dataset != NSLKDD or not t.path.is_dir():
        return {}
    return {
        name: kdd.load_nslkdd(t.path / file)
        for name, file in TEST_FILES.items()
        if (t.path / file).is_file()
    }


@dataclass(frozen=True)
class Registered:
    """A trained model logged and registered as the challenger.

    Attributes:
        model_name: Registered model name.
        version: The new version (now ``@challenger``).
        run_id: Its training run.
        holdout: The rows held out of training, for promotion.
        label_column: The holdout's 0/1 column.
    """

    model_name: str
    version: str
    run_id: str
    holdout: pd.DataFrame
    label_column: str


def train_and_register(
    settings: Settings,
    t: Target,
    data: TrainingData,
    *,
    quality_passed: bool,
    seed: int = 0,
    figures: bool = True,
) -> Registered:
    """Train on ``data`` minus the holdout, log the run, register it as the challenger.

    Args:
        settings: Tracking server, holdout sizes.
        t: What to train.
        data: The loaded training rows.
        quality_passed: The outcome of :func:`check_training_data` (recorded on the run).
        seed: Seeds the split, the model and any holdout sampling.
        figures: Log evaluation figures.
    """
    from ml.hosts import split_by_time, train_nslkdd, train_toniot
    from ml.registry import log_training_run, register_challenger

    h = settings.hosts
    if t.dataset == NSLKDD:
        held = nslkdd_holdout_mask(data.frame, h.holdout_fraction)
        trained = train_nslkdd(data.frame[~held], seed=seed)
        holdout = data.frame[held]
    else:
        assert t.activity is not None
        trained = train_toniot(data.frame, t.activity, seed=seed)
        fractions = tuple(trained.params["fractions"])
        holdout = split_by_time(data.frame, fractions)[2]
    holdout = _cap(holdout, h.holdout_max_rows, seed)
    run_id = log_training_run(
        trained,
        settings,
        experiment=t.experiment,
        data_identity=data.identity,
        test_frames=_test_frames(t),
        holdout=holdout,
        quality_passed=quality_passed,
        figures=figures,
    )
    version = register_challenger(settings, run_id, t.model_name)
    return Registered(t.model_name, version, run_id, holdout, trained.label_column)


class RunOutdated(AnomalakeError):
    """What an earlier step of a run checked has changed since: run it again from the start."""


def check_targets(settings: Settings, run_label: str | None = None) -> list[dict[str, Any]]:
    """The quality gate on every configured target's training data (the DAG's first task).

    Returns per target: ``target``, the data's ``identity``, ``quality_passed``
    (critical expectations) and the failed ``warnings``.

    Raises:
        QualityGateFailed: a critical expectation failed for a target.
        AnomalakeError: a target's data is missing.
    """
    checked = []
    for t in targets(settings):
        data = load_training_data(t)
        label = f"{run_label} {t.key}" if run_label else None
        result = check_training_data(settings, t, data, run_label=label)
        checked.append(
            {
                "target": t.key,
                "identity": data.identity,
                "quality_passed": result.success_critical,
                "warnings": list(result.failed_warning),
            }
        )
    return checked


def train_checked(settings: Settings, checked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Train and register each target :func:`check_targets` passed, on the data it checked.

    Returns per target: ``target``, ``model_name``, ``version`` (now ``@challenger``) and
    ``run_id``.

    Raises:
        RunOutdated: a target's files changed after the check.
    """
    registered = []
    for item in checked:
        t = target(settings, item["target"])
        data = load_training_data(t)
        if data.identity != item["identity"]:
            raise RunOutdated(
                f"{t.key}: the data changed after the quality check "
                f"({item['identity']} -> {data.identity})",
                "run the quality check again (trigger the DAG again)",
            )
        r = train_and_register(settings, t, data, quality_passed=item["quality_passed"])
        registered.append(
            {"target": t.key, "model_name": r.model_name, "version": r.version, "run_id": r.run_id}
        )
    return registered


def promote_registered(
    settings: Settings, registered: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Challenger vs champion for each model :func:`train_checked` registered.

    Each challenger is compared on its logged holdout and becomes ``champion`` if better
    (:func:`ml.registry.promote_challenger`). Returns the decisions.

    Raises:
        RunOutdated: ``@challenger`` no longer points at the version this run registered.
    """
    from ml.registry import CHALLENGER, alias_version, promote_challenger

    decisions = []
    for item in registered:
        name = item["model_name"]
        challenger = alias_version(settings, name, CHALLENGER)
        if challenger != item["version"]:
            raise RunOutdated(
                f"{name}: @{CHALLENGER} is v{challenger}, not the v{item['version']} "
                "this run registered (another run moved it)",
                "train again (trigger the DAG again)",
            )
        decisions.append(promote_challenger(settings, name).as_dict())
    return decisions


def retrain(
    settings: Settings,
    t: Target,
    *,
    seed: int = 0,
    metric: str | None = None,
    margin: float | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """Load, gate, train, log, register as challenger and promote if it is better.

    Args:
        settings: Everything configurable (``settings.hosts``, MLflow, reports).
        t: What to train (see :func:`target`).
        seed: Seeds the split and the model.
        metric: Promotion metric; ``settings.hosts.promotion_metric`` by default.
        margin: Promotion margin; ``settings.hosts.promotion_margin`` by default.
        figures: Log evaluation figures.

    Returns:
        ``model_name``, ``version``, ``training_run_id``, ``quality`` (critical passed,
        warnings, Data Docs) and ``decision`` (:meth:`PromotionDecision.as_dict`).

    Raises:
        QualityGateFailed: a critical expectation failed; nothing was trained.
        AnomalakeError: missing data or an unreachable MLflow server.
    """
    from ml.registry import promote, require_server

    require_server(settings)
    data = load_training_data(t)
    quality = check_training_data(settings, t, data)
    registered = train_and_register(
        settings, t, data, quality_passed=quality.success_critical, seed=seed, figures=figures
    )
    decision = promote(
        settings,
        registered.model_name,
        holdout=registered.holdout,
        label_column=registered.label_column,
        metric=metric or settings.hosts.promotion_metric,
        margin=settings.hosts.promotion_margin if margin is None else margin,
        quality_passed=quality.success_critical,
    )
    return {
        "model_name": registered.model_name,
        "version": registered.version,
        "training_run_id": registered.run_id,
        "quality": {
            "passed": quality.success_critical,
            "warnings": list(quality.failed_warning),
            "data_docs": str(quality.validation_page or quality.data_docs_index),
        },
        "decision": decision.as_dict(),
    }


def retrain_nslkdd(
    settings: Settings,
    folder: Path,
    *,
    seed: int = 0,
    model_name: str | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """:func:`retrain` on an NSL-KDD folder (``KDDTrain+_20Percent.txt``; test files optional).

    The holdout is the content-hashed share of the training file (see the module docstring),
    never ``KDDTest+``.
    """
    return retrain(
        settings,
        target(settings, NSLKDD, path=folder, model_name=model_name),
        seed=seed,
        figures=figures,
    )


def retrain_toniot(
    settings: Settings,
    path: Path,
    activity: str,
    *,
    seed: int = 0,
    model_name: str | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """:func:`retrain` on a ToN-IoT Linux CSV or folder of one activity.

    The holdout is the latest 20 % of rows by time, the slice ``train_toniot`` holds out.
    """
    return retrain(
        settings,
        target(settings, f"{TONIOT}-{activity}", path=path, model_name=model_name),
        seed=seed,
        figures=figures,
    )
