"""Retraining of the markets IsolationForest: data gate, train, MLflow, challenger, promotion.

The job edge of :mod:`ml.markets_iforest`, as :mod:`ml.hosts_pipeline` is for the hosts
classifiers: the same registry functions, the same promotion rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from anomalake.errors import AnomalakeError
from anomalake.settings import Settings
from ml.hosts import Metrics
from ml.registry import PromotionDecision

MAX_INVALID_SHARE = 0.01  # more rows the speed layer would reject than this: no promotion


@dataclass(frozen=True)
class MarketsRetrained:
    """What one retraining did."""

    invalid_share: float
    quality_passed: bool
    test: Metrics
    model_name: str
    version: str
    decision: PromotionDecision


def retrain_markets(settings: Settings, path: Path, *, seed: int = 0) -> MarketsRetrained:
    """Train on export files with ``labels.csv``, log, register as challenger, promote.

    The data gate is the share of rows the speed layer would reject (at most 1 %).
    """
    from anomalake.detection.markets import rule_params
    from anomalake.loaders.markets import load_bars
    from ml.features.markets import valid_bars
    from ml.markets_iforest import LABEL_COLUMN, REGISTERED_MODEL, train_iforest
    from ml.registry import (
        frame_digest,
        log_training_run,
        promote,
        register_challenger,
        registered_name,
    )

    labels_file = path / "labels.csv"
    if not labels_file.is_file():
        raise AnomalakeError(
            f"no labels.csv in {path}", "generate data with `anomalake generate markets DIR`"
        )
    bars = load_bars(path)
    invalid = float((~valid_bars(bars)).mean())
    quality_passed = invalid <= MAX_INVALID_SHARE
    result = train_iforest(
        bars, pd.read_csv(labels_file), seed=seed, rule_params=rule_params(settings.markets)
    )
    name = registered_name(settings, REGISTERED_MODEL)
    run_id = log_training_run(
        result.trained,
        settings,
        experiment=REGISTERED_MODEL,
        data_identity={"bars_sha256": frame_digest(bars), "rows": str(len(bars))},
        holdout=result.test_frame,
        quality_passed=quality_passed,
    )
    version = register_challenger(settings, run_id, name)
    decision = promote(
        settings,
        name,
        holdout=result.test_frame,
        label_column=LABEL_COLUMN,
        metric=settings.hosts.promotion_metric,
        margin=settings.hosts.promotion_margin,
        quality_passed=quality_passed,
    )
    return MarketsRetrained(invalid, quality_passed, result.test, name, version, decision)
