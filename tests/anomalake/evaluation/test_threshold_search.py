from __future__ import annotations

import numpy as np
import pytest

from anomalake.evaluation.metrics import point_metrics
from anomalake.evaluation.nab import (
    PROFILES,
    LabelledSeries,
    candidate_thresholds,
    raw_score,
    sweep,
)
from anomalake.evaluation.skab import ScoredRun, best_f1_threshold


def _random_corpus(rng: np.random.Generator) -> list[LabelledSeries]:
    corpus = []
    for _ in range(3):
        n = int(rng.integers(40, 300))
        windows: list[tuple[int, int]] = []
        row = int(rng.integers(0, 20))
        while row < n - 5 and len(windows) < 3:
            end = min(n - 1, row + int(rng.integers(0, 12)))
            windows.append((row, end))
            row = end + 1 + int(rng.integers(1, 60))
        # coarse scores, so that ties between rows occur
        corpus.append(LabelledSeries(list(np.round(rng.random(n), 2)), windows))
    return corpus


@pytest.mark.parametrize("seed", range(20))
def test_the_sorted_sweep_equals_the_row_by_row_scorer(seed: int) -> None:
    rng = np.random.default_rng(seed)
    corpus = _random_corpus(rng)
    thresholds = [0.0, 0.5, 1.0, *np.round(rng.random(10), 2)]
    swept = sweep(corpus, thresholds)
    for profile in PROFILES.values():
        expected = [sum(raw_score(s, t, profile) for s in corpus) for t in thresholds]
        assert swept.raw(profile) == pytest.approx(expected)


def test_candidate_thresholds_hold_the_high_scores_and_a_ladder_near_1() -> None:
    corpus = [LabelledSeries([0.0] * 20 + [0.2, 0.9, 0.5] * 30, [(50, 60)])]
    candidates = candidate_thresholds(corpus)
    assert {0.5, 0.9} <= set(candidates) and 0.0 not in candidates  # from the median up
    assert 1 - 1e-14 < max(candidates) < 1.0 and len(candidates) > 50


def test_best_f1_threshold_is_the_exact_optimum() -> None:
    rng = np.random.default_rng(7)
    runs = []
    for k in range(3):
        y = np.zeros(200, dtype=bool)
        y[80 + k * 10 : 140] = True
        s = np.round(rng.random(200) * 0.6 + 0.4 * y, 2)
        runs.append(ScoredRun(f"r/{k}.csv", s, y, [], [float(i) for i in range(200)]))
    threshold, metrics = best_f1_threshold(runs)
    scores = np.concatenate([r.scores for r in runs])
    labels = np.concatenate([r.anomaly for r in runs]).tolist()
    brute = max(point_metrics((scores > t).tolist(), labels).f1 for t in np.unique(scores))
    assert metrics.f1 == pytest.approx(brute)
    assert point_metrics((scores > threshold).tolist(), labels) == metrics
