from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from anomalake.detection.univariate import EwmaBand
from anomalake.evaluation.nab_corpus import evaluate, load_corpus, write_results
from tests.conftest import SHARED_DATA

SHARED_NAB = SHARED_DATA / "nab-dev"


def _corpus(root: Path) -> None:
    (root / "data" / "artificialWithAnomaly").mkdir(parents=True)
    rows = [(f"2026-01-01 00:{m:02d}:00", 10.0 if not 40 <= m <= 42 else 50.0) for m in range(60)]
    with open(root / "data" / "artificialWithAnomaly" / "step.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "value"])
        writer.writerows(rows)
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(
        json.dumps(
            {
                "artificialWithAnomaly/step.csv": [
                    ["2026-01-01 00:38:00.000000", "2026-01-01 00:45:00.000000"]
                ]
            }
        )
    )


def test_a_tiny_corpus_is_loaded_scored_and_written_in_nab_format(tmp_path: Path) -> None:
    _corpus(tmp_path)
    corpus = load_corpus(tmp_path)
    assert corpus[0].windows == [(38, 45)]
    results, scores = evaluate(corpus, lambda: EwmaBand(alpha=0.1, warmup=10).update, [0.99])
    assert results["standard"][1] > 90.0  # the jump at row 40 is found early in its window
    write_results(tmp_path / "results", "ewma_band", corpus, scores)
    out = tmp_path / "results" / "ewmaband" / "artificialWithAnomaly" / "ewmaband_step.csv"
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score" and len(lines) == 61


@pytest.mark.skipif(not SHARED_NAB.exists(), reason=f"real NAB data not found at {SHARED_NAB}")
def test_the_shared_nab_dev_corpus_loads_with_its_windows() -> None:
    corpus = load_corpus(SHARED_NAB)
    assert len(corpus) == 34
    assert sum(len(f.windows) for f in corpus) > 0
    assert all(0 <= a <= b < len(f.values) for f in corpus for a, b in f.windows)
