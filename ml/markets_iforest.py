"""An unsupervised detector of anomalous minute bars, scored against the generator's labels.

The model is an :class:`~sklearn.ensemble.IsolationForest` in a scikit-learn
:class:`~sklearn.pipeline.Pipeline` whose first step is :func:`ml.features.markets.bar_features`,
so it takes raw bars (``symbol, timestamp, open, high, low, close, volume``) as the loader,
the stream or a replay has them. Its score is the forest's anomaly score ``s(x)`` in
``(0, 1]`` (the original paper's: near 1 isolated, about 0.5 and below ordinary), exposed as
``predict_proba(...)[:, 1]`` so that :class:`ml.hosts.TrainedModel` and
:mod:`ml.registry` log, register and promote it like the supervised hosts models.

The recipe (:func:`train_iforest`):

* **split by time**: whole trading days, the earliest for training, the next for validation,
  the latest for test -- never random rows, as a deployed detector only ever sees later days;
* **fit without labels** on every bar of the training days (anomalies included, as a
  deployed detector would see them);
* **threshold on the validation days**: the score that maximises F1 against the labels
  there (or, with ``false_alarm_budget``, the lowest whose false-alarm rate there stays
  within the budget); the test days are never used to choose anything;
* **report on the test days**: :class:`~ml.hosts.Metrics` (precision, recall, F1, ROC-AUC,
  PR-AUC, false-alarm rate, confusion counts), recall per anomaly kind, and the same metrics
  for rules A1, A2 and "A1 or A2" of :mod:`anomalake.detection.markets` on the same bars,
  for comparison.

A bar is positive when ``labels.csv`` (``symbol, timestamp, kind``) has an entry at its
symbol and minute; a bar labelled with both kinds has kind ``price_jump+volume_spike``.

The forest's inputs (:data:`MODEL_FEATURES`) and ``max_samples`` were chosen on the
validation days of generated data (10 symbols, 20 days, seed 0; test days unseen): of the
candidate sets of :func:`~ml.features.markets.bar_features` columns, ``abs_return`` with
the linear ``volume_ratio`` had the best validation PR-AUC and F1 (0.86 / 0.85 with 1024
samples per tree, against 0.60-0.68 / 0.71-0.73 for sets with ``log_volume_ratio`` or
``range``, which make the forest isolate quiet minutes as readily as volume spikes). The
indicators ``has_return``/``has_volume_ratio`` are left out: a forest would isolate the rare
warm-up bars by them alone.

Run ``python -m ml.markets_iforest [--symbols 10 --days 20 --seed 0]`` for a JSON report on
freshly generated data (:func:`evaluate_markets_iforest`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import IsolationForest
from sklearn.metrics import precision_recall_curve
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import threadpool_limits

from anomalake.detection.markets import MarketRuleParams, SymbolState, accept_bars, evaluate_ready
from anomalake.errors import AnomalakeError
from anomalake.generators.markets import EXCHANGE_TZ, NO_FAULTS, FaultRates, write_market_files
from anomalake.loaders.markets import load_bars
from ml.features.markets import BAR_INPUTS, bar_features, epoch_minutes, valid_bars
from ml.hosts import (
    Metrics,
    TrainedModel,
    input_example,
    score_metrics,
    threshold_for_false_alarm_rate,
)

DATASET = "markets"
LABEL_COLUMN = "anomaly"
KIND_COLUMN = "kind"
KINDS: tuple[str, ...] = ("price_jump", "volume_spike")
MODEL_NAME = "isolation_forest"
REGISTERED_MODEL = "markets-iforest"
DEFAULT_SPLIT: tuple[float, float, float] = (0.6, 0.2, 0.2)
MODEL_FEATURES: tuple[str, ...] = ("abs_return", "volume_ratio")
N_ESTIMATORS = 200
MAX_SAMPLES = 1024

Contamination = float | Literal["auto"]


# --- the model -------------------------------------------------------------------------


class IsolationForestDetector(ClassifierMixin, BaseEstimator):
    """An isolation forest on selected feature columns, scored like a binary classifier.

    ``predict_proba(X)[:, 1]`` is the forest's anomaly score in ``(0, 1]`` (minus
    :meth:`~sklearn.ensemble.IsolationForest.score_samples`); classes are ``0`` (normal) and
    ``1`` (anomaly). ``fit`` ignores ``y``: the forest is unsupervised.

    Args:
        features: columns of the feature frame the forest uses.
        n_estimators: trees.
        max_samples: rows drawn to grow each tree (all rows if there are fewer).
        contamination: the forest's own ``offset_`` (its ``predict``); it changes neither
            the scores nor the threshold, which is chosen on validation days.
        random_state: seed of the forest.
    """

    def __init__(
        self,
        features: tuple[str, ...] = MODEL_FEATURES,
        n_estimators: int = N_ESTIMATORS,
        max_samples: int | float | str = MAX_SAMPLES,
        contamination: Contamination = "auto",
        random_state: int | None = None,
    ) -> None:
        self.features = features
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.random_state = random_state

    def _matrix(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            X = X.loc[:, list(self.features)]
        return np.asarray(X, dtype=float)

    def fit(self, X: Any, y: Any = None) -> IsolationForestDetector:
        """Grow the forest on the rows of ``X`` (``y`` is ignored)."""
        matrix = self._matrix(X)
        max_samples = self.max_samples
        if isinstance(max_samples, int):  # a small training set is used whole, without a warning
            max_samples = min(max_samples, len(matrix))
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=max_samples,
            contamination=self.contamination,
            random_state=self.random_state,
            n_jobs=1,
        ).fit(matrix)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = matrix.shape[1]
        return self

    def anomaly_score(self, X: Any) -> np.ndarray:
        """The forest's anomaly score of each row, in ``(0, 1]``; higher is more unusual."""
        return np.asarray(-self.forest_.score_samples(self._matrix(X)), dtype=float)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Columns: normal, anomaly; the anomaly column is :meth:`anomaly_score`."""
        score = self.anomaly_score(X)
        return np.column_stack([1.0 - score, score])

    def predict(self, X: Any) -> np.ndarray:
        """1 where the forest's own ``predict`` says outlier (its ``contamination`` cut).

        :class:`~ml.hosts.TrainedModel` applies the threshold chosen on validation instead.
        """
        return np.asarray((self.forest_.predict(self._matrix(X)) == -1).astype(int))


def iforest_pipeline(
    seed: int = 0,
    *,
    contamination: Contamination = "auto",
    features: tuple[str, ...] = MODEL_FEATURES,
    n_estimators: int = N_ESTIMATORS,
    max_samples: int = MAX_SAMPLES,
) -> Pipeline:
    """Raw bars -> :func:`~ml.features.markets.bar_features` -> isolation forest."""
    return Pipeline(
        [
            ("features", FunctionTransformer(bar_features)),
            (
                "model",
                IsolationForestDetector(
                    features=features,
                    n_estimators=n_estimators,
                    max_samples=max_samples,
                    contamination=contamination,
                    random_state=seed,
                ),
            ),
        ]
    )


# --- labels, days and the split ----------------------------------------------------------


def label_bars(bars: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """``bars`` with :data:`LABEL_COLUMN` (bool) and :data:`KIND_COLUMN` added.

    A bar is positive when ``labels`` (``symbol, timestamp, kind``, as ``labels.csv`` or
    :func:`~anomalake.generators.markets.generate_bars` give them) has an entry at its symbol
    and UTC minute; its kind is the labelled kinds joined by ``+`` (``None`` if negative).

    Raises:
        AnomalakeError: ``labels`` lacks one of those columns.
    """
    missing = [c for c in ("symbol", "timestamp", "kind") if c not in labels.columns]
    if missing:
        raise AnomalakeError(
            f"the labels lack columns {missing}",
            "pass labels.csv as written by `anomalake generate markets`",
        )
    keyed = pd.DataFrame(
        {
            "symbol": labels["symbol"].astype(str).to_numpy(),
            "minute": epoch_minutes(labels["timestamp"]).to_numpy(),
            "kind": labels["kind"].astype(str).to_numpy(),
        }
    ).dropna(subset=["minute"])
    kinds = keyed.groupby(["symbol", "minute"])["kind"].agg(lambda k: "+".join(sorted(set(k))))
    key = pd.MultiIndex.from_arrays(
        [bars["symbol"].astype(str).to_numpy(), epoch_minutes(bars["timestamp"]).to_numpy()]
    )
    kind = kinds.reindex(key).to_numpy()
    out = bars.copy()
    out[LABEL_COLUMN] = pd.notna(kind)
    out[KIND_COLUMN] = np.where(pd.notna(kind), kind, None)
    return out


def trading_days(bars: pd.DataFrame) -> pd.Series:
    """The exchange-local date of each bar (``None`` where the timestamp is unparsable)."""
    ts = pd.to_datetime(bars["timestamp"], errors="coerce", utc=True, format="ISO8601")
    local = ts.dt.tz_convert(EXCHANGE_TZ).dt.date
    return local.where(ts.notna(), None)


@dataclass(frozen=True)
class DaySplit:
    """Trading days of each part of a split by time, in order."""

    train: tuple[date, ...]
    validation: tuple[date, ...]
    test: tuple[date, ...]

    def as_dict(self) -> dict[str, list[str]]:
        """ISO dates per part, JSON-ready."""
        return {k: [d.isoformat() for d in v] for k, v in asdict(self).items()}


def split_days(days: Sequence[date], fractions: tuple[float, float, float]) -> DaySplit:
    """The earliest, middle and latest of ``days`` (train, validation, test).

    Validation and test get ``round(fraction x days)`` days each, at least one; training
    gets the rest, at least one.

    Raises:
        AnomalakeError: fewer than three distinct days, or fractions that leave a part empty.
    """
    if len(fractions) != 3 or min(fractions) <= 0 or not np.isclose(sum(fractions), 1.0):
        raise AnomalakeError(
            f"split fractions {fractions} must be three positive shares summing to 1",
            "use e.g. (0.6, 0.2, 0.2)",
        )
    ordered = sorted(set(days))
    n = len(ordered)
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise AnomalakeError(
            f"{n} trading days cannot be split into train, validation and test days",
            "use at least three trading days (twenty or more for stable figures)",
        )
    return DaySplit(
        train=tuple(ordered[:n_train]),
        validation=tuple(ordered[n_train : n_train + n_val]),
        test=tuple(ordered[n_train + n_val :]),
    )


# --- rules A1/A2 for comparison ------------------------------------------------------------


def rule_flags(bars: pd.DataFrame, params: MarketRuleParams | None = None) -> pd.DataFrame:
    """Whether A1 and A2 fired on each bar, by :mod:`anomalake.detection.markets` per symbol.

    Valid bars (:func:`~ml.features.markets.valid_bars`) are accepted into one
    :class:`~anomalake.detection.markets.SymbolState` per symbol in frame order and evaluated
    in minute order
    (``flush``, as a batch recomputation does); a rule that was not evaluated (warm-up, gap),
    an invalid bar and a duplicate minute count as not fired.

    Returns:
        Boolean columns ``a1``, ``a2`` with the index of ``bars``.
    """
    params = params or MarketRuleParams()
    minute = epoch_minutes(bars["timestamp"])
    valid = valid_bars(bars)
    a1 = np.zeros(len(bars), dtype=bool)
    a2 = np.zeros(len(bars), dtype=bool)
    frame = pd.DataFrame(
        {
            "position": np.arange(len(bars)),
            "symbol": bars["symbol"].to_numpy(),
            "minute": minute.to_numpy(),
            "close": pd.to_numeric(bars["close"], errors="coerce").to_numpy(),
            "volume": pd.to_numeric(bars["volume"], errors="coerce").to_numpy(),
        }
    )[valid.to_numpy()]
    for _, rows in frame.groupby("symbol", sort=False):
        state = SymbolState()
        accept_bars(state, rows[["position", "minute", "close", "volume"]])
        scored = evaluate_ready(state, params, flush=True)
        position = scored["position"].to_numpy()
        a1[position] = scored["a1"].to_numpy(dtype=bool, na_value=False)
        a2[position] = scored["a2"].to_numpy(dtype=bool, na_value=False)
    return pd.DataFrame({"a1": a1, "a2": a2}, index=bars.index)


def rule_metrics(actual: np.ndarray, flags: pd.DataFrame) -> dict[str, Metrics]:
    """:class:`~ml.hosts.Metrics` of A1, A2 and "A1 or A2" as 0/1 scores at 0.5.

    (Their ROC-AUC is that of a single cut: ``(recall + 1 - false-alarm rate) / 2``.)
    """
    a1, a2 = flags["a1"].to_numpy(), flags["a2"].to_numpy()
    flagged = {"A1": a1, "A2": a2, "A1|A2": a1 | a2}
    return {name: score_metrics(actual, f.astype(float), 0.5) for name, f in flagged.items()}


# --- training ------------------------------------------------------------------------------


def max_f1_threshold(actual: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold (``score >= t`` is positive) with the highest F1 on these rows.

    Ties go to the lowest such threshold (the most recall).

    Raises:
        AnomalakeError: no positive rows.
    """
    y = np.asarray(actual).astype(bool)
    if not y.any():
        raise AnomalakeError(
            "the validation days hold no labelled anomaly to choose an F1 threshold on",
            "use more validation days or symbols, or pass false_alarm_budget",
        )
    precision, recall, thresholds = precision_recall_curve(y, scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return float(thresholds[int(np.argmax(f1[:-1]))])


def recall_by_kind(frame: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    """Share of the labelled bars of each kind in :data:`KINDS` that ``predicted`` flags."""
    kinds = frame[KIND_COLUMN].fillna("").astype(str)
    out: dict[str, float] = {}
    for kind in KINDS:
        rows = kinds.str.contains(kind, regex=False).to_numpy()
        out[kind] = float(predicted[rows].mean()) if rows.any() else float("nan")
    return out


@dataclass(frozen=True)
class MarketsDetector:
    """A trained detector, its split, and test-day figures next to the rules'.

    Attributes:
        trained: the pipeline and threshold in the shape :func:`ml.registry.log_training_run`
            logs (``trained.holdout`` holds the test-day metrics).
        split: which trading days trained, validated and tested.
        test: metrics on the test days at the validation threshold.
        test_recall_by_kind: test recall per anomaly kind.
        rules: metrics of ``A1``, ``A2`` and ``A1|A2`` on the same test bars.
        rules_recall_by_kind: per rule, recall per anomaly kind on the test bars.
        test_frame: the labelled test bars (e.g. the holdout to log for promotion).
        timings: seconds spent labelling, fitting, scoring and running the rules.
    """

    trained: TrainedModel
    split: DaySplit
    test: Metrics
    test_recall_by_kind: dict[str, float]
    rules: dict[str, Metrics]
    rules_recall_by_kind: dict[str, dict[str, float]]
    test_frame: pd.DataFrame
    timings: dict[str, float]

    def report(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict."""
        return {
            "split": self.split.as_dict(),
            "threshold": self.trained.threshold,
            "params": self.trained.params,
            "validation": self.trained.validation.as_dict(),
            "test": {**self.test.as_dict(), "recall_by_kind": self.test_recall_by_kind},
            "rules_test": {
                name: {**m.as_dict(), "recall_by_kind": self.rules_recall_by_kind[name]}
                for name, m in self.rules.items()
            },
            "seconds": {k: round(v, 3) for k, v in self.timings.items()},
        }


def train_iforest(
    bars: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    seed: int = 0,
    contamination: Contamination = "auto",
    split: tuple[float, float, float] = DEFAULT_SPLIT,
    false_alarm_budget: float | None = None,
    rule_params: MarketRuleParams | None = None,
) -> MarketsDetector:
    """Fit an isolation forest on the earliest trading days; threshold on the next; test.

    Args:
        bars: raw bars (:func:`~anomalake.loaders.markets.load_bars` rows); bars without a
            parsable timestamp belong to no day and are left out.
        labels: the generator's labels (``symbol, timestamp, kind``).
        seed: seeds the forest.
        contamination: the forest's own cut; it does not affect scores or the threshold.
        split: shares of the trading days for train, validation and test, in time order.
        false_alarm_budget: if given, the threshold is the lowest whose false-alarm rate on
            the validation days is at most this; otherwise the one of maximum validation F1.
        rule_params: A1/A2 parameters of the comparison (the defaults of settings if None).

    Raises:
        AnomalakeError: too few days, or validation days without anomalies (F1 threshold).
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    labelled = label_bars(bars, labels)
    day = trading_days(labelled)
    labelled = labelled[day.notna().to_numpy()]
    day = day[day.notna()]
    parts = split_days(list(day), split)
    train, validation, test = (
        labelled[day.isin(days).to_numpy()].reset_index(drop=True)
        for days in (parts.train, parts.validation, parts.test)
    )
    timings["label_and_split"] = time.perf_counter() - started

    lap = time.perf_counter()
    pipeline = iforest_pipeline(seed, contamination=contamination)
    with threadpool_limits(limits=1):
        pipeline.fit(train)  # unsupervised: no labels
        timings["fit"] = time.perf_counter() - lap
        lap = time.perf_counter()
        val_scores = pipeline.predict_proba(validation)[:, 1]
        val_actual = validation[LABEL_COLUMN].to_numpy()
        if false_alarm_budget is None:
            threshold = max_f1_threshold(val_actual, val_scores)
        else:
            threshold = threshold_for_false_alarm_rate(val_scores[~val_actual], false_alarm_budget)
        test_scores = pipeline.predict_proba(test)[:, 1]
    timings["score"] = time.perf_counter() - lap
    validation_metrics = score_metrics(val_actual, val_scores, threshold)
    test_actual = test[LABEL_COLUMN].to_numpy()
    test_metrics = score_metrics(test_actual, test_scores, threshold)
    train_seconds = time.perf_counter() - started

    lap = time.perf_counter()
    flags = rule_flags(test, rule_params)
    rules = rule_metrics(test_actual, flags)
    fired = {"A1": flags["a1"], "A2": flags["a2"], "A1|A2": flags["a1"] | flags["a2"]}
    rules_by_kind = {name: recall_by_kind(test, f.to_numpy()) for name, f in fired.items()}
    timings["rules"] = time.perf_counter() - lap

    trained = TrainedModel(
        pipeline=pipeline,
        threshold=threshold,
        validation=validation_metrics,
        input_example=input_example(train, BAR_INPUTS),
        dataset=DATASET,
        label_column=LABEL_COLUMN,
        model_name=MODEL_NAME,
        params={
            "model": MODEL_NAME,
            "seed": seed,
            "contamination": contamination,
            "n_estimators": N_ESTIMATORS,
            "max_samples": MAX_SAMPLES,
            "features": ",".join(MODEL_FEATURES),
            "split": list(split),
            "threshold_rule": (
                "max_validation_f1"
                if false_alarm_budget is None
                else f"false_alarm_budget={false_alarm_budget}"
            ),
            "train_days": f"{parts.train[0]}..{parts.train[-1]} ({len(parts.train)})",
            "validation_days": (
                f"{parts.validation[0]}..{parts.validation[-1]} ({len(parts.validation)})"
            ),
            "test_days": f"{parts.test[0]}..{parts.test[-1]} ({len(parts.test)})",
            "train_rows": len(train),
            "validation_rows": len(validation),
            "test_rows": len(test),
            "train_anomalies": int(train[LABEL_COLUMN].sum()),
        },
        train_seconds=train_seconds,
        validation_frame=validation,
        holdout=test_metrics,
    )
    return MarketsDetector(
        trained=trained,
        split=parts,
        test=test_metrics,
        test_recall_by_kind=recall_by_kind(test, test_scores >= threshold),
        rules=rules,
        rules_recall_by_kind=rules_by_kind,
        test_frame=test,
        timings=timings,
    )


# --- evaluation on generated data -----------------------------------------------------------


def evaluate_markets_iforest(
    n_symbols: int = 10,
    days: int = 20,
    seed: int = 0,
    *,
    start: date = date(2026, 1, 5),
    anomaly_rate: float = 0.002,
    faults: FaultRates = NO_FAULTS,
    split: tuple[float, float, float] = DEFAULT_SPLIT,
) -> dict[str, Any]:
    """Generate bars and labels in a temporary folder, train, and report the figures.

    The data come from :func:`~anomalake.generators.markets.write_market_files` (read back
    with :func:`~anomalake.loaders.markets.load_bars` and ``labels.csv``), so the detector
    sees what the loader gives. ``seed`` seeds both the data and the forest.

    Returns:
        A JSON-ready dict: the data settings, :meth:`MarketsDetector.report` and timings.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anomalake-markets-") as tmp:
        folder = Path(tmp)
        write_market_files(
            folder, n_symbols, start, days, seed=seed, faults=faults, anomaly_rate=anomaly_rate
        )
        generated = time.perf_counter()
        bars = load_bars(folder)
        labels = pd.read_csv(folder / "labels.csv")
    loaded = time.perf_counter()
    detector = train_iforest(bars, labels, seed=seed, split=split)
    report = {
        "data": {
            "n_symbols": n_symbols,
            "days": days,
            "seed": seed,
            "start": start.isoformat(),
            "anomaly_rate": anomaly_rate,
            "faults": asdict(faults),
            "bars": len(bars),
            "labels": len(labels),
        },
        **detector.report(),
    }
    report["seconds"] |= {
        "generate": round(generated - started, 3),
        "load": round(loaded - generated, 3),
        "total": round(time.perf_counter() - started, 3),
    }
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m ml.markets_iforest``: print :func:`evaluate_markets_iforest` as JSON."""
    parser = argparse.ArgumentParser(description=evaluate_markets_iforest.__doc__)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = evaluate_markets_iforest(args.symbols, args.days, args.seed)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
