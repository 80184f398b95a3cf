from __future__ import annotations

import pytest

from anomalake.evaluation.nab import (
    PROFILES,
    LabelledSeries,
    best_threshold,
    normalised,
    probation_rows,
    raw_score,
    scaled_sigmoid,
)

STANDARD = PROFILES["standard"]


def _series(detections: list[int], length: int = 100) -> LabelledSeries:
    scores = [1.0 if i in detections else 0.0 for i in range(length)]
    return LabelledSeries(scores, [(40, 49)])


def test_scaled_sigmoid_matches_the_published_shape() -> None:
    # sigma(y) = 2 / (1 + e^(5y)) - 1, computed by hand:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(3.5) == -1.0


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert probation_rows(100) == 15
    assert probation_rows(10_000) == 750


def test_a_tiny_series_scored_by_hand() -> None:
    # Window rows 40..49 (width 10). Detections at 45 (in the window, y = -0.5), at 47
    # (same window: ignored), at 60 (past the window: y = 11/9) and at 20 (before any
    # window: -1), and at 5 (probation: ignored).
    # 0.848284 + 0.11 * (-0.995574) + 0.11 * (-1) = 0.628771
    assert raw_score(_series([5, 20, 45, 47, 60]), 0.5, STANDARD) == pytest.approx(
        0.628771, abs=1e-6
    )


def test_missed_window_costs_the_fn_weight_and_early_detection_scores_most() -> None:
    assert raw_score(_series([]), 0.5, STANDARD) == -1.0
    assert raw_score(_series([]), 0.5, PROFILES["reward_low_FN_rate"]) == -2.0
    assert raw_score(_series([40]), 0.5, STANDARD) > raw_score(_series([48]), 0.5, STANDARD)


def test_normalisation_puts_null_at_0_and_perfect_at_100() -> None:
    corpus = [_series([])]
    assert normalised(raw_score(corpus[0], 0.5, STANDARD), corpus, STANDARD) == 0.0
    perfect = [_series([40])]
    assert normalised(raw_score(perfect[0], 0.5, STANDARD), perfect, STANDARD) == pytest.approx(
        100.0
    )


def test_threshold_optimisation_picks_the_best_cut() -> None:
    scores = [0.0] * 100
    scores[41] = 0.9  # a good detection
    scores[70] = 0.6  # a false positive with a lower score
    corpus = [LabelledSeries(scores, [(40, 49)])]
    threshold, score = best_threshold(corpus, STANDARD, [0.5, 0.8])
    assert threshold == 0.8
    assert score > 90.0
