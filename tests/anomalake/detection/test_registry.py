"""The one registry of kinds: build, restore, deploy a tuned file, survive extreme values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from anomalake.detection import registry
from anomalake.detection.detector_set import DetectorSet, DetectorSetConfig
from anomalake.errors import AnomalakeError
from anomalake.settings import PROJECT_ROOT

NESTED = {
    "kind": "combine",
    "how": "max",
    "parts": [
        {"kind": "peak", "window": 5, "of": {"kind": "ewma", "alpha": 0.1, "warmup": 3}},
        {"kind": "hold", "window": 3, "of": {"kind": "rolling_z", "window": 10, "warmup": 3}},
    ],
}


def _series(n: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(rng.normal(10.0, 1.0, size=n)) + [30.0] + list(rng.normal(10.0, 1.0, size=20))


def test_a_restored_node_scores_bit_for_bit_like_one_that_never_stopped() -> None:
    xs = _series(60)
    whole = registry.build(NESTED)
    expected = [whole.update(x, float(i)) for i, x in enumerate(xs)]
    first = registry.build(NESTED)
    got = [first.update(x, float(i)) for i, x in enumerate(xs[:30])]
    restored = registry.build(NESTED, json.loads(json.dumps(first.state())))
    got += [restored.update(x, float(i + 30)) for i, x in enumerate(xs[30:])]
    assert got == expected
    assert max(expected) > 0.99  # the jump at 30.0 is seen


@pytest.mark.parametrize("kind", ["rolling_z", "ewma", "page_hinkley", "forecast_error_change"])
def test_a_value_a_detector_cannot_absorb_does_not_break_it(kind: str) -> None:
    node = registry.build({"kind": kind, "warmup": 5})
    for i, x in enumerate(_series(40)):
        node.update(x, float(i))
    assert 0.0 <= node.update(1e200, 41.0) <= 1.0
    after = [node.update(x, float(42 + i)) for i, x in enumerate(_series(80, seed=1))]
    assert all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in after)
    restored = registry.build({"kind": kind, "warmup": 5}, json.loads(json.dumps(node.state())))
    assert 0.0 <= restored.update(10.0, 200.0) <= 1.0


@pytest.mark.parametrize("kind", ["rolling_z", "ewma"])
def test_a_band_broken_by_a_huge_value_starts_afresh(kind: str) -> None:
    node = registry.build({"kind": kind, "warmup": 5})
    for i, x in enumerate(_series(40)):
        node.update(x, float(i))
    node.update(1e200, 41.0)  # its square overflows the band's sums
    fresh = registry.build({"kind": kind, "warmup": 5})
    xs = _series(80, seed=1)
    assert [node.update(x, 0.0) for x in xs] == [fresh.update(x, 0.0) for x in xs]
    assert max(fresh.update(x, 0.0) for x in [10.0] * 3 + [40.0]) > 0.99


def test_a_vector_detector_survives_an_extreme_vector() -> None:
    node = registry.build({"kind": "ewma_t2", "alpha": 0.05, "warmup": 10})
    rng = np.random.default_rng(2)
    for i, row in enumerate(rng.normal(size=(30, 3))):
        node.update(row, float(i))
    node.update(np.array([1e200, 0.0, 0.0]), 31.0)
    later = [node.update(r, 32.0 + i) for i, r in enumerate(rng.normal(size=(40, 3)))]
    assert all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in later)
    assert np.median(later[20:]) < 0.999


def test_non_finite_input_scores_zero_and_is_not_learnt() -> None:
    node = registry.build({"kind": "ewma", "alpha": 0.1, "warmup": 2})
    for i in range(5):
        node.update(1.0 + i % 2, float(i))
    before = node.state()
    assert node.update(math.nan, 9.0) == 0.0 and node.update(math.inf, 10.0) == 0.0
    assert node.state() == before


def test_kinds_reading_time_are_refused_for_evaluation_by_position() -> None:
    with pytest.raises(AnomalakeError, match="reads event time"):
        registry.scorer({"kind": "peak", "of": {"kind": "count"}})
    assert registry.reads({"kind": "combine", "parts": [{"kind": "count"}, {"kind": "ewma"}]}) == {
        "time",
        "value",
    }


def test_a_tuned_config_deploys_in_a_detector_set_by_naming_its_file(tmp_path: Path) -> None:
    tuned = PROJECT_ROOT / "docs" / "tuned" / "nab.json"
    saved = json.loads(tuned.read_text())["detector"]
    yaml_text = "detectors: [{name: value, field: value, tuned: docs/tuned/nab.json}]"
    config = DetectorSetConfig.from_yaml(yaml_text, ("value",), base=tmp_path)
    assert config.detectors[0].config == saved
    # the deployed detector scores exactly what the evaluation's scorer does
    xs = _series(200)
    evaluation = registry.scorer(saved)()
    deployed = DetectorSet(config)
    assert [deployed.update({"value": x}, float(i)).scores["value"] for i, x in enumerate(xs)] == [
        evaluation(x) for x in xs
    ]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(AnomalakeError, match="no 'detector' configuration"):
        DetectorSetConfig.from_yaml(
            "detectors: [{name: v, field: value, tuned: bad.json}]", ("value",), base=tmp_path
        )


def test_the_tuned_skab_config_builds_as_a_vector_detector() -> None:
    saved = json.loads((PROJECT_ROOT / "docs" / "tuned" / "skab.json").read_text())["detector"]
    assert registry.multivariate(saved)
    registry.build(saved)
