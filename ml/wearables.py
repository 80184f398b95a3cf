"""The wearables episode classifier: labelled generated wearers -> windows -> MLflow @champion.

Training data are generated E4 exports
(:func:`anomalake.generators.wearables.write_wearables_files`, seeds from
``settings.wearables.train_seed``; evaluation uses other seeds), cut into the windows
the stream computes (:func:`anomalake.detection.wearables.export_features`, the one
feature function). A window is labelled with the medical episode its end falls in once
half a window has passed since the episode began (class 1..7 in
:data:`~anomalake.detection.wearables.MEDICAL`'s order), normal (class 0) outside
episodes; windows at an episode's edges, in device states and those the device rules
already explain (:func:`~anomalake.detection.wearables.device_state`) are left out: the
classifier is never asked about them.

The model is a gradient-boosted tree ensemble on the features (context included: a high
rate while walking is not tachycardia at rest), fitted on three quarters of the wearers
and validated on the rest, which are also the holdout promotion re-scores. The run logs
per-kind precision and recall, macro F1 and the ROC AUC of "any episode" against normal
(``sklearn.metrics``); the version is registered as ``@challenger`` and promoted to
``@champion`` by :func:`ml.registry.promote` when it is the first or clearly better.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from anomalake.detection.wearables import FEATURES, MEDICAL, device_state, export_features
from anomalake.evaluation.metrics import EventMetrics
from anomalake.generators.wearables import DEFAULT_START, load_labels, write_wearables_files
from anomalake.loaders.e4 import find_exports, frames, load_export

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from anomalake.settings import Settings

EXPERIMENT = "wearables-episodes"
#: The registered model (after the environment prefix), as the spec's scorer names it.
MODEL = "wearables-episodes"
LABEL = "label"
#: The holdout's 0/1 column for promotion: any episode.
ABNORMAL = "abnormal"
CLASS_NAMES = ("normal", *MEDICAL)


def export_windows(root: Path, window_seconds: int, step_seconds: int) -> pd.DataFrame:
    """Every window of every export under ``root`` (``device``, ``time``, the features)."""
    parts = [
        export_features(frames(load_export(e)), window_seconds, step_seconds)
        for e in find_exports(root)
    ]
    return pd.concat(parts, ignore_index=True)


def window_labels(windows: pd.DataFrame, labels: pd.DataFrame, window_seconds: int) -> pd.Series:
    """Each window's class (0 normal, 1..7 medical), or NaN if it is not to be learned from.

    NaN: the window's end lies in a device state, in the first half window of an
    episode, or within a window after an episode's end (the window still holds it).
    """
    out = pd.Series(0.0, index=windows.index)
    margin = pd.Timedelta(seconds=window_seconds)
    for e in labels.itertuples():
        mine = windows["device"] == e.device
        at = windows["time"]
        inside = mine & (at >= e.start) & (at < e.end)
        edge = mine & (
            ((at >= e.start) & (at < e.start + margin / 2))
            | ((at >= e.end) & (at < e.end + margin))
        )
        if e.kind in MEDICAL:
            out[inside] = MEDICAL.index(e.kind) + 1.0
        else:
            out[inside] = np.nan
        out[edge] = np.nan
    return out


def generated_windows(
    root: Path, window_seconds: int, step_seconds: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every window of a generated folder with its class, and the labelled episodes.

    The class is NaN for a window not to learn from (:func:`window_labels`); episodes
    have ``device``, ``start``, ``end``, ``kind``. ``root`` holds ``labels.csv`` and its
    exports, or folders that each do (their devices are then named ``<folder>/<device>``,
    in windows and episodes alike).
    """
    folders = (
        [root]
        if (root / "labels.csv").is_file()
        else sorted(p.parent for p in root.glob("*/labels.csv"))
    )
    if not folders:
        raise ValueError(f"no labels.csv in {root} or its folders: not generated data")
    parts, episodes = [], []
    for folder in folders:
        windows = export_windows(folder, window_seconds, step_seconds)
        labels = load_labels(folder)
        windows[LABEL] = window_labels(windows, labels, window_seconds)
        if folder != root:
            windows["device"] = folder.name + "/" + windows["device"]
            labels = labels.assign(device=folder.name + "/" + labels["device"].astype(str))
        parts.append(windows)
        episodes.append(labels)
    return pd.concat(parts, ignore_index=True), pd.concat(episodes, ignore_index=True)


def learnable(windows: pd.DataFrame) -> pd.DataFrame:
    """The windows to learn from: labelled, and not explained by a device state."""
    rows = windows[list(FEATURES)].to_dict("records")
    explained = [device_state(row) is not None for row in rows]
    kept = windows[windows[LABEL].notna() & ~np.asarray(explained, dtype=bool)].copy()
    kept[LABEL] = kept[LABEL].astype(int)
    kept[ABNORMAL] = (kept[LABEL] > 0).astype(int)
    return kept.reset_index(drop=True)


def labelled_windows(root: Path, window_seconds: int, step_seconds: int) -> pd.DataFrame:
    """The windows of a generated folder to learn from, with their class (:func:`learnable`)."""
    return learnable(generated_windows(root, window_seconds, step_seconds)[0])


def episode_pipeline(seed: int = 0) -> Pipeline:
    """Features (by name) -> gradient-boosted trees over the classes (NaN handled natively).

    Settings chosen on the seed-7 generated wearers (tuning data, ``docs/wearables.md``).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("features", ColumnTransformer([("window", "passthrough", list(FEATURES))])),
            (
                "model",
                # regularised (small trees, large leaves, L2): the unregularised 300
                # rounds were sure of their mistakes, so no threshold could remove the
                # false alarms they made on wearers they had not seen
                HistGradientBoostingClassifier(
                    max_iter=200,
                    learning_rate=0.05,
                    max_leaf_nodes=15,
                    min_samples_leaf=100,
                    l2_regularization=1.0,
                    class_weight="balanced",
                    early_stopping=False,
                    random_state=seed,
                ),
            ),
        ]
    )


def metrics(model: Any, frame: pd.DataFrame) -> dict[str, float]:
    """Window metrics on labelled windows: per kind precision/recall, macro F1, ROC AUC."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

    proba = model.predict_proba(frame)
    classes = np.asarray(model.classes_)
    predicted = classes[proba.argmax(axis=1)]
    actual = frame[LABEL].to_numpy()
    present = sorted(set(actual) | set(predicted))
    precision, recall, _, support = precision_recall_fscore_support(
        actual, predicted, labels=present, zero_division=0
    )
    out: dict[str, float] = {
        "macro_f1": float(f1_score(actual, predicted, labels=present, average="macro")),
        "windows": float(len(frame)),
    }
    if len(set(frame[ABNORMAL])) == 2:
        out["roc_auc"] = float(roc_auc_score(frame[ABNORMAL], 1.0 - proba[:, 0]))
    for label, p, r, n in zip(present, precision, recall, support, strict=True):
        name = CLASS_NAMES[int(label)]
        out |= {
            f"precision_{name}": float(p),
            f"recall_{name}": float(r),
            f"windows_{name}": float(n),
        }
    return out


#: Hours of the day (UTC) training wearers start at: a quarter each, so that the
#: classifier sees sleep, mornings, afternoons and evenings.
TRAINING_STARTS = (0, 6, 12, 18)


#: The folder of generated training data whose wearers are never fitted on: the
#: operating point is chosen on them (and on the validation wearers).
CALIBRATION = "calibration"
#: Added to ``train_seed`` for the calibration wearers' seed.
CALIBRATION_SEED = 100


def training_data(settings: Settings, out: Path) -> Path:
    """Generate the configured training wearers into ``out``, one episode an hour each.

    One folder per start hour (:data:`TRAINING_STARTS`), seeds from ``train_seed`` on;
    and ``calibration_wearers`` in :data:`CALIBRATION`, for whole days at the
    generator's usual episode rate, as wearers are followed.
    """
    w = settings.wearables
    per_start = max(1, w.train_wearers // len(TRAINING_STARTS))
    for k, hour in enumerate(TRAINING_STARTS):
        write_wearables_files(
            out / f"from-{hour:02d}h",
            per_start,
            w.train_hours,
            seed=w.train_seed + k,
            start=DEFAULT_START.replace(hour=hour),
            episodes_per_hour=1.0,
        )
    if w.calibration_wearers:
        write_wearables_files(
            out / CALIBRATION,
            w.calibration_wearers,
            w.calibration_hours,
            seed=w.train_seed + CALIBRATION_SEED,
        )
    return out


@dataclass(frozen=True)
class OperatingPoint:
    """A score threshold and a confirmation count, and the event outcome they gave.

    ``medical``: episodes detected and missed, alarms and false alarms (the evaluation's
    reading, :func:`anomalake.evaluation.wearables.device_metrics`) over ``wearer_days``.
    """

    threshold: float
    confirm_windows: int
    medical: EventMetrics
    wearer_days: float

    @property
    def false_alarms_per_day(self) -> float:
        """Medical false alarms per wearer-day."""
        return self.medical.false_alarms / self.wearer_days if self.wearer_days else math.inf

    @property
    def median_delay(self) -> float:
        """The median detection delay in seconds (NaN when nothing was detected)."""
        delays = sorted(self.medical.delays_seconds())
        return delays[len(delays) // 2] if delays else math.nan

    def summary(self) -> dict[str, float]:
        """Figures to log: the point and its outcome."""
        m = self.medical
        return {
            "threshold": self.threshold,
            "confirm_windows": float(self.confirm_windows),
            "episodes": float(len(m.events)),
            "detected": float(m.detected),
            "false_alarms": float(m.false_alarms),
            "false_alarms_per_day": self.false_alarms_per_day,
            "median_delay_seconds": self.median_delay,
            "wearer_days": self.wearer_days,
        }


#: Confirmation counts :func:`operating_point` tries.
CONFIRMS = (1, 2, 3, 4, 6)


def window_kinds(model: Any, windows: pd.DataFrame) -> pd.DataFrame:
    """Per window: ``score`` (1 - P(normal)) and ``kind`` (the likeliest medical class).

    Both NaN/None for a window in a device state, which the classifier is never asked.
    """
    rows = windows[list(FEATURES)].to_dict("records")
    worn = np.asarray([device_state(row) is None for row in rows], dtype=bool)
    out = pd.DataFrame({"score": np.nan, "kind": None}, index=windows.index)
    if worn.any():
        from ml.serving import abnormal

        proba = model.predict_proba(windows.loc[worn, list(FEATURES)])
        score, classes = abnormal(proba, model.classes_)
        out.loc[worn, "score"] = score
        out.loc[worn, "kind"] = [MEDICAL[int(c) - 1] for c in classes]
    return out


def operating_point(
    model: Any,
    windows: pd.DataFrame,
    episodes: pd.DataFrame,
    window_seconds: int,
    step_seconds: int,
    false_alarms_per_day: float,
) -> tuple[OperatingPoint, list[OperatingPoint]]:
    """The threshold and confirmation count to serve ``model`` at; and every one tried.

    ``windows``: every window of some wearers the model was not fitted on, in time order
    per device (:func:`generated_windows`); ``episodes``: their labelled episodes. Each
    candidate is read as the stream reads it: a window is abnormal when its score reaches
    the threshold, a kind fires after ``confirm_windows`` abnormal windows in a row
    (:func:`anomalake.speed.wearables.confirmed`, the stream's own function), and the
    evaluation's event reading counts episodes detected and false alarms. Chosen: among
    the points within ``false_alarms_per_day``, the one detecting most episodes, then
    the earliest; if none is within it, the one with fewest false alarms.
    """
    from anomalake.evaluation.wearables import device_metrics, naive_utc
    from anomalake.speed.wearables import confirmed

    scored = pd.concat([windows[["device", "time"]], window_kinds(model, windows)], axis=1)
    scored["event_time"] = scored["time"].dt.tz_convert("UTC").dt.tz_localize(None)
    labels = naive_utc(episodes)
    devices = [
        (rows.sort_values("event_time"), labels[labels["device"] == device])
        for device, rows in scored.groupby("device", sort=True)
    ]
    days = (
        sum(
            ((r["event_time"].max() - r["event_time"].min()).total_seconds() + window_seconds)
            for r, _ in devices
        )
        / 86_400.0
    )
    worn = scored["score"].dropna().to_numpy()
    # the quantiles of the scores of worn windows' upper half (most are near 0), and a
    # fixed ladder up to 1 - 1e-5: the false alarms live in the top few windows
    levels = np.concatenate([np.linspace(0.5, 0.99, 25), 1.0 - np.geomspace(0.01, 1e-5, 25)])
    ladder = np.concatenate([np.linspace(0.05, 0.95, 19), 1.0 - np.geomspace(0.05, 1e-5, 25)])
    quantiles = np.quantile(worn, levels) if len(worn) else []
    thresholds = np.unique(np.round(np.concatenate([quantiles, ladder]), 6))
    tried = []
    for threshold in thresholds:
        for confirm in CONFIRMS:
            total = EventMetrics()
            for rows, own in devices:
                kinds = [
                    kind if score >= threshold else None
                    for kind, score in zip(rows["kind"], rows["score"].fillna(-1.0), strict=True)
                ]
                fired, _ = confirmed(0, kinds, confirm)
                found, _ = device_metrics(rows, own, MEDICAL, fired, window_seconds, step_seconds)
                total = total + found
            tried.append(OperatingPoint(float(threshold), confirm, total, days))
    within = [p for p in tried if p.false_alarms_per_day <= false_alarms_per_day]
    if within:
        best = max(
            within,
            key=lambda p: (p.medical.detected, -p.median_delay, -p.medical.false_alarms),
        )
    else:
        best = min(tried, key=lambda p: (p.medical.false_alarms, -p.medical.detected))
    return best, tried


def split_by_wearer(frame: pd.DataFrame, validation_share: float = 0.25) -> pd.Series:
    """True for the windows of a ``validation_share`` of wearers: every 1/share-th device.

    Taken across the sorted devices (so across the folders of each start hour), not the
    last ones, which would all start at one hour.
    """
    devices = sorted(frame["device"].unique())
    every = max(2, round(1 / validation_share))
    chosen = devices[every - 1 :: every] or devices[-1:]
    return frame["device"].isin(chosen)


def train_and_register(
    settings: Settings, data: Path | None = None, seed: int = 0
) -> dict[str, Any]:
    """Train on generated wearers, log the run, register ``@challenger``, promote if better.

    ``data``: a generated folder (with ``labels.csv``) to train on; generated from
    settings into a temporary folder when None.
    """
    import mlflow
    from mlflow.models import infer_signature

    from ml.registry import (
        HOLDOUT_DIR,
        HOLDOUT_FILE,
        MODEL_ARTIFACT,
        TAG_DATASET,
        TAG_LABEL,
        TAG_MODEL_URI,
        TAG_QUALITY,
        TAG_SERVING,
        _requirements,
        _trusted_types,
        frame_digest,
        promote,
        register_challenger,
        registered_name,
        require_server,
    )
    from ml.tracking import use_tracking_server

    w = settings.wearables
    require_server(settings)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = data or training_data(settings, Path(tmp))
        windows, episodes = generated_windows(root, w.window_seconds, w.step_seconds)
    prepared = time.perf_counter() - started
    frame = learnable(windows)
    calibration = frame["device"].str.startswith(f"{CALIBRATION}/")
    validation = split_by_wearer(frame[~calibration]).reindex(frame.index, fill_value=True)
    train, held = frame[~validation], frame[validation]
    model = episode_pipeline(seed)
    began = time.perf_counter()
    model.fit(train[list(FEATURES)], train[LABEL])
    fit_seconds = time.perf_counter() - began
    scores = metrics(model, held)
    unseen = set(held["device"])
    began = time.perf_counter()
    point, tried = operating_point(
        model,
        windows[windows["device"].isin(unseen)].reset_index(drop=True),
        episodes[episodes["device"].isin(unseen)],
        w.window_seconds,
        w.step_seconds,
        w.false_alarms_per_day,
    )
    choose_seconds = time.perf_counter() - began
    trusted = _trusted_types(model)
    serialization = "skops" if trusted is not None else "cloudpickle"
    example = held[list(FEATURES)].head(5)
    name = registered_name(settings, MODEL)
    use_tracking_server(settings, EXPERIMENT)
    holdout = held[[*FEATURES, ABNORMAL]].reset_index(drop=True)
    with mlflow.start_run(run_name=f"episodes-seed{seed}") as run:
        mlflow.set_tags(
            {
                TAG_DATASET: "generated-wearables",
                TAG_LABEL: ABNORMAL,
                TAG_QUALITY: "True",
                f"{TAG_SERVING}threshold": repr(point.threshold),
                f"{TAG_SERVING}confirm_windows": str(point.confirm_windows),
            }
        )
        mlflow.log_params(
            {
                "data": str(data) if data else f"generated seed {w.train_seed}",
                "wearers": int(frame["device"].nunique()),
                "train_windows": len(train),
                "validation_windows": len(held),
                "validation_wearers": len(unseen),
                "false_alarms_per_day_budget": w.false_alarms_per_day,
                "window_seconds": w.window_seconds,
                "step_seconds": w.step_seconds,
                "classes": ",".join(f"{i}={n}" for i, n in enumerate(CLASS_NAMES)),
                "seed": seed,
                "holdout_artifact_rows": len(holdout),
                "holdout_artifact_sha256": frame_digest(holdout),
            }
        )
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            serialization_format=serialization,
            skops_trusted_types=trusted,
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            pip_requirements=_requirements(serialization),
        )
        mlflow.set_tag(TAG_MODEL_URI, info.model_uri)
        mlflow.log_metrics(
            {f"val_{k}": v for k, v in scores.items()}
            | {f"val_event_{k}": v for k, v in point.summary().items() if math.isfinite(v)}
            | {
                "prepare_seconds": prepared,
                "fit_seconds": fit_seconds,
                "choose_seconds": choose_seconds,
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / HOLDOUT_FILE
            holdout.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path=HOLDOUT_DIR)
            points = Path(tmp) / "operating_points.csv"
            pd.DataFrame([p.summary() for p in tried]).to_csv(points, index=False)
            mlflow.log_artifact(str(points))
    version = register_challenger(settings, run.info.run_id, name)
    decision = promote(
        settings,
        name,
        holdout=holdout,
        label_column=ABNORMAL,
        metric="roc_auc",
        margin=settings.hosts.promotion_margin,
        quality_passed=True,
    )
    return {
        "model_name": name,
        "version": version,
        "run_id": run.info.run_id,
        "metrics": scores,
        "operating_point": point.summary(),
        "decision": decision.as_dict(),
        "fit_seconds": fit_seconds,
        "prepare_seconds": prepared,
    }
