from __future__ import annotations

import json
import math
import random

import pytest

from anomalake.detection.univariate import (
    EwmaBand,
    PageHinkley,
    RollingZScore,
    ThresholdDuration,
    z_score_to_unit,
)


def test_z_to_unit() -> None:
    assert z_score_to_unit(0.0) == 0.0
    assert z_score_to_unit(3.0) == pytest.approx(0.99730, abs=1e-5)
    assert z_score_to_unit(-3.0) == z_score_to_unit(3.0)


def test_rolling_z_scores_against_the_window_before_the_value() -> None:
    det = RollingZScore(window=4, warmup=4)
    assert [det.update(x) for x in (1.0, 2.0, 3.0, 4.0)] == [0.0] * 4  # warm-up
    # window 1,2,3,4: mean 2.5, population std sqrt(1.25); x = 2.5 + 3 std
    x = 2.5 + 3 * math.sqrt(1.25)
    assert det.update(x) == pytest.approx(z_score_to_unit(3.0))
    assert list(det.values) == [2.0, 3.0, 4.0, x]  # bounded memory


def test_constant_series_scores_zero_and_any_change_one() -> None:
    det = RollingZScore(window=5, warmup=5)
    for _ in range(5):
        det.update(7.0)
    assert det.update(7.0) == 0.0
    assert det.update(8.0) == 1.0


def test_ewma_band_learns_a_level_and_flags_a_jump() -> None:
    rng = random.Random(1)
    det = EwmaBand(alpha=0.05, warmup=30)
    scores = [det.update(10 + rng.gauss(0, 1)) for _ in range(300)]
    assert max(scores[100:]) < 0.9999
    assert det.mean == pytest.approx(10, abs=0.5)
    assert det.update(20.0) > 0.9999


def test_threshold_duration_needs_the_excursion_to_last() -> None:
    det = ThresholdDuration(high=100.0, duration=60.0)
    assert det.update(150.0, t=0.0) == 0.0
    assert det.update(150.0, t=59.0) == 0.0
    assert det.update(150.0, t=60.0) == 1.0
    assert det.update(90.0, t=61.0) == 0.0  # back in bounds resets
    assert det.update(150.0, t=62.0) == 0.0


def test_page_hinkley_detects_a_mean_shift_and_not_noise() -> None:
    rng = random.Random(2)
    det = PageHinkley(delta=0.25, threshold=30.0)
    before = [det.update(rng.gauss(0, 1)) for _ in range(500)]
    assert max(before) < 1.0
    after = [det.update(rng.gauss(2, 1)) for _ in range(100)]
    first = after.index(1.0)
    assert first < 40  # detection delay in observations


@pytest.mark.parametrize(
    "make",
    [
        lambda: RollingZScore(window=20, warmup=10),
        lambda: EwmaBand(alpha=0.1, warmup=10),
        lambda: PageHinkley(delta=0.05, threshold=5.0, warmup=10),
    ],
)
def test_state_round_trips_through_json_mid_stream(make) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    xs = [rng.gauss(0, 1) + (5 if i > 60 else 0) for i in range(120)]
    whole = make()
    expected = [whole.update(x) for x in xs]
    first = make()
    got = [first.update(x) for x in xs[:50]]
    resumed = type(first).from_state(json.loads(json.dumps(first.state())))
    got += [resumed.update(x) for x in xs[50:]]
    assert got == pytest.approx(expected)
