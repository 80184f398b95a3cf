from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomalake.detection.multivariate import HotellingT2
from anomalake.evaluation.metrics import point_metrics
from anomalake.evaluation.skab import evaluate_runs, labelled_runs, load_run
from tests.conftest import SHARED_DATA

SHARED_SKAB = SHARED_DATA / "skab"


def test_point_metrics_by_hand() -> None:
    m = point_metrics([True, True, False, False, True], [True, False, True, False, False])
    assert (m.tp, m.fp, m.fn, m.tn) == (1, 2, 1, 1)
    assert m.precision == pytest.approx(1 / 3)
    assert m.recall == 0.5
    assert m.f1 == pytest.approx(0.4)
    assert m.false_alarm_rate == pytest.approx(2 / 3)
    assert m.missed_alarm_rate == 0.5


def test_t2_flags_a_broken_correlation_that_each_sensor_alone_allows() -> None:
    rng = np.random.default_rng(0)
    det = HotellingT2(warmup=500)
    for _ in range(500):
        a = rng.normal()
        assert det.update([a, a + 0.05 * rng.normal()]) == 0.0
    assert det.update([1.0, 1.0]) < 0.99  # on the diagonal: normal
    assert det.update([1.0, -1.0]) > 0.9999  # each value ordinary, the pair is not
    restored = HotellingT2.from_state(det.state())
    assert restored.update([1.0, -1.0]) == pytest.approx(det.update([1.0, -1.0]))


def _run(path: Path, anomalous: range) -> None:
    rows = ["datetime;s1;s2;anomaly;changepoint"]
    rng = np.random.default_rng(1)
    for i in range(300):
        a = rng.normal()
        b = a + 0.1 * rng.normal() if i not in anomalous else -a + 3
        rows.append(
            f"2020-01-01 00:{i // 60:02d}:{i % 60:02d};{a:.4f};{b:.4f};"
            f"{1.0 if i in anomalous else 0.0};0.0"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def test_evaluate_runs_on_a_tiny_skab_layout(tmp_path: Path) -> None:
    _run(tmp_path / "valve1" / "0.csv", range(250, 280))
    runs = labelled_runs(tmp_path)
    assert load_run(runs[0]).shape == (300, 4)
    total, per_run = evaluate_runs(runs, lambda: HotellingT2(warmup=200).update, 0.999)
    assert total.tp + total.fn == 30
    assert total.recall > 0.9 and total.false_alarm_rate < 0.05
    assert list(per_run) == ["valve1/0.csv"]


@pytest.mark.skipif(not SHARED_SKAB.exists(), reason=f"SKAB data not found at {SHARED_SKAB}")
def test_the_shared_skab_runs_load() -> None:
    runs = labelled_runs(SHARED_SKAB)
    assert len(runs) == 34
    frame = load_run(runs[0])
    assert len([c for c in frame.columns if c not in ("anomaly", "changepoint")]) == 8


def test_labelled_runs_of_a_generated_folder_are_the_runs_only(tmp_path: Path) -> None:
    from anomalake.evaluation.skab import labelled_runs
    from anomalake.generators.infra import write_infra_files

    write_infra_files(tmp_path, assets=2, hours=0.1, bad_rows=True)
    assert [p.name for p in labelled_runs(tmp_path)] == ["pump01.csv", "pump02.csv"]
