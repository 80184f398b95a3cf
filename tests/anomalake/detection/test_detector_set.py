"""The detector set: YAML config, new online detectors, combination, state across splits."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from anomalake.detection.detector_set import DetectorSet, DetectorSetConfig
from anomalake.detection.multivariate import EwmaT2
from anomalake.detection.univariate import ForecastErrorChange, WindowCount
from anomalake.errors import AnomalakeError
from anomalake.settings import get_settings

FIELDS = ("a", "b")
YAML = """
threshold: 0.99
combine: max
detectors:
  - {name: vec, kind: ewma_t2, fields: all, params: {alpha: 0.05, warmup: 30}}
  - {name: a_sma, kind: rolling_z, field: a, params: {window: 20, warmup: 10}}
  - {name: b_low, kind: threshold_duration, field: b, params: {low: -5, duration: 3}}
  - {name: a_err, kind: forecast_error_change, field: a, params: {warmup: 20, threshold: 20}}
  - {name: rate, kind: count, params: {window_seconds: 10, warmup: 3}}
rules:
  - {name: b_very_high, severity: critical, all: [{field: b, op: ">", value: 50}]}
"""


def _series(n: int, seed: int = 1) -> list[tuple[dict[str, float], float]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a = rng.gauss(0, 1) + (8 if 150 <= i < 155 else 0)
        b = 0.5 * a + rng.gauss(0, 0.3) - (10 if 200 <= i < 210 else 0)
        out.append(({"a": a, "b": b}, float(i)))
    return out


def test_config_parses_and_rejects_bad_entries() -> None:
    cfg = DetectorSetConfig.from_yaml(YAML, FIELDS)
    assert [d.name for d in cfg.detectors] == ["vec", "a_sma", "b_low", "a_err", "rate"]
    assert cfg.detectors[0].fields == FIELDS and cfg.threshold == 0.99
    with pytest.raises(AnomalakeError, match="unknown fields"):
        DetectorSetConfig.from_yaml("detectors: [{name: x, kind: ewma, field: zz}]", FIELDS)
    with pytest.raises(AnomalakeError, match="unknown detector kind 'magic'"):
        DetectorSetConfig.from_yaml("detectors: [{name: x, kind: magic, field: a}]", FIELDS)
    with pytest.raises(AnomalakeError, match="unknown severity"):
        DetectorSetConfig.from_yaml(
            "rules: [{name: r, severity: urgent, all: [{field: a, op: '>', value: 1}]}]", FIELDS
        )
    with pytest.raises(AnomalakeError, match="bad detector configuration"):
        DetectorSetConfig.from_yaml(
            "detectors: [{name: x, kind: ewma, field: a, params: {beta: 1}}]", FIELDS
        )
    with pytest.raises(AnomalakeError, match="reads one field, not 2"):
        DetectorSetConfig.from_yaml("detectors: [{name: x, kind: ewma, fields: all}]", FIELDS)


def test_shipped_infra_config_parses() -> None:
    settings = get_settings()
    cfg = DetectorSetConfig.from_file(settings.infra_detectors_config, settings.infra.sensors)
    assert len(cfg.detectors) >= 6 and {r.name for r in cfg.rules} == {"overheating", "dry_running"}


def test_set_flags_the_injected_faults_and_the_rule() -> None:
    det = DetectorSet(DetectorSetConfig.from_yaml(YAML, FIELDS))
    results = [det.update(rec, t) for rec, t in _series(260)]
    flagged = {i for i, r in enumerate(results) if r.anomaly}
    assert flagged & set(range(150, 155)), "the jump in a is found"
    assert flagged & set(range(203, 210)), "b below -5 for 3 s fires the threshold detector"
    assert all(0.0 <= r.score <= 1.0 for r in results)
    assert max(r.score for r in results[:30]) < 0.99, "warm-up scores nothing"
    extra = det.update({"a": 0.0, "b": 60.0}, 261.0)
    assert extra.rules == ("b_very_high",)


def test_state_split_anywhere_gives_identical_scores() -> None:
    """A micro-batch boundary (state to JSON and back) changes nothing, bit for bit."""
    cfg = DetectorSetConfig.from_yaml(YAML, FIELDS)
    series = _series(300)
    whole = DetectorSet(cfg)
    expected = [whole.update(rec, t) for rec, t in series]
    for cut in (1, 29, 30, 31, 151, 299):
        first = DetectorSet(cfg)
        got = [first.update(rec, t) for rec, t in series[:cut]]
        resumed = DetectorSet.from_state(cfg, json.loads(json.dumps(first.state())))
        got += [resumed.update(rec, t) for rec, t in series[cut:]]
        assert got == expected, f"split at {cut}"


def test_window_count_scores_a_dip_and_a_burst() -> None:
    det = WindowCount(window_seconds=10, warmup=3, alpha=0.2)
    scores = [det.update(float(t)) for t in range(0, 100)]  # 10 per window
    assert max(scores) < 0.5
    dip = det.update(135.0)  # closes a full window then two empty ones
    assert dip > 0.99
    burst = [det.update(140 + i / 10) for i in range(60)]  # 60 in one window
    assert det.update(150.0) > 0.99 and max(burst) < 1.0


def test_forecast_error_change_detects_noisier_errors_not_a_steady_level() -> None:
    rng = np.random.default_rng(0)
    det = ForecastErrorChange(warmup=50, threshold=20)
    quiet = [det.update(float(x)) for x in rng.normal(10, 0.1, 400)]
    assert max(quiet) < 1.0
    noisy = [det.update(float(x)) for x in rng.normal(10, 1.0, 200)]
    assert max(noisy) == 1.0


def test_ewma_t2_flags_a_broken_correlation_inside_each_range() -> None:
    rng = np.random.default_rng(0)
    det = EwmaT2(alpha=0.01, warmup=100)
    for _ in range(400):
        z = rng.normal()
        det.update([z, z + rng.normal(0, 0.1)])
    assert det.update([1.0, 1.02]) < 0.99
    assert det.update([1.0, -1.0]) > 0.9999, "each value is normal, the pair is not"
    restored = EwmaT2.from_state(json.loads(json.dumps(det.state())))
    assert restored.update([0.5, 0.5]) == det.update([0.5, 0.5])
