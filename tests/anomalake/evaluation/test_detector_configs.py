from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anomalake.detection.multivariate import HotellingT2, MewmaT2
from anomalake.detection.registry import describe, multivariate, scorer
from anomalake.detection.univariate import HoldFilter, PeakFilter
from anomalake.errors import AnomalakeError
from anomalake.evaluation.tuning import load, nab_grid, skab_grid


def test_peak_filter_passes_only_new_maxima_of_its_window() -> None:
    f = PeakFilter(window=3)
    out = [f.update(s) for s in [0.0, 0.9, 0.95, 0.95, 0.5, 0.6, 0.7, 0.8]]
    # 0.95 again is no new maximum; 0.8 beats the last three (0.5, 0.6, 0.7) once 0.95 left
    assert out == [0.0, 0.9, 0.95, 0.0, 0.0, 0.0, 0.0, 0.8]
    restored = PeakFilter.from_state(json.loads(json.dumps(f.state())))
    assert restored.update(0.85) == f.update(0.85) == 0.85


def test_hold_filter_keeps_an_alarm_for_its_window() -> None:
    f = HoldFilter(window=3)
    assert [f.update(s) for s in [0.0, 1.0, 0.0, 0.0, 0.0]] == [0.0, 1.0, 1.0, 1.0, 0.0]
    restored = HoldFilter.from_state(json.loads(json.dumps(f.state())))
    assert restored.update(0.2) == f.update(0.2) == 0.2


def test_mewma_flags_a_small_sustained_shift_that_plain_t2_misses() -> None:
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(400, 3))
    shifted = rng.normal(size=(60, 3)) + 0.8  # under a standard deviation per row
    t2, mewma = HotellingT2(warmup=400), MewmaT2(warmup=400, lam=0.1)
    for row in normal:
        assert t2.update(row) == mewma.update(row) == 0.0
    plain = [t2.update(r) for r in shifted]
    smooth = [mewma.update(r) for r in shifted]
    assert np.mean(np.array(plain[30:]) > 0.999) < 0.5
    assert all(s > 0.999 for s in smooth[30:])
    restored = MewmaT2.from_state(json.loads(json.dumps(mewma.state())))
    assert restored.update(shifted[0]) == pytest.approx(mewma.update(shifted[0]))


def test_mewma_with_lam_1_is_hotelling_t2() -> None:
    rng = np.random.default_rng(1)
    a, b = HotellingT2(warmup=50), MewmaT2(warmup=50, lam=1.0)
    for row in rng.normal(size=(80, 2)):
        assert a.update(row) == pytest.approx(b.update(row))


def test_configurations_build_describe_and_reject_bad_ones() -> None:
    config = {
        "kind": "combine",
        "how": "max",
        "parts": [
            {"kind": "peak", "window": 5, "of": {"kind": "ewma", "alpha": 0.1, "warmup": 3}},
            {"kind": "rolling_z", "window": 10, "warmup": 3},
        ],
    }
    update = scorer(config)()
    scores = [update(x) for x in [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 9.0]]
    assert scores[-1] > 0.99 and all(0.0 <= s <= 1.0 for s in scores)
    assert describe(config) == (
        "max(peak(window=5) of ewma(alpha=0.1, warmup=3), rolling_z(window=10, warmup=3))"
    )
    assert not multivariate(config) and multivariate(
        {"kind": "hold", "of": {"kind": "hotelling_t2"}}
    )
    with pytest.raises(AnomalakeError, match="unknown detector kind"):
        scorer({"kind": "magic"})
    with pytest.raises(AnomalakeError, match="bad detector configuration"):
        scorer({"kind": "ewma", "alpha": 0.1, "colour": "red"})


def test_every_grid_entry_builds() -> None:
    assert len(nab_grid()) == 26 and len(skab_grid()) == 18  # the sizes docs/detection.md gives
    for config in nab_grid():
        scorer(config)
    for entry in skab_grid():
        assert multivariate(entry["detector"])
        scorer(entry["detector"])


def test_a_config_for_the_other_data_set_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"dataset": "skab", "detector": {"kind": "hotelling_t2"}}))
    with pytest.raises(AnomalakeError, match="tuned on skab, not nab"):
        load(path, "nab")
    path.write_text("{not json")
    with pytest.raises(AnomalakeError, match="cannot read"):
        load(path, "nab")
