"""The episode classifier's training windows: which windows teach what, and which none."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from anomalake.detection.wearables import FEATURES, MEDICAL
from anomalake.generators.wearables import write_wearables_files
from ml.wearables import ABNORMAL, LABEL, episode_pipeline, labelled_windows, metrics, window_labels

T0 = pd.Timestamp("2026-03-09 12:00:00", tz="UTC")


def test_windows_learn_the_episode_they_end_in_and_edges_teach_nothing() -> None:
    times = [T0 + pd.Timedelta(seconds=s) for s in (100, 1005, 1040, 1300, 1420, 1500, 2100)]
    windows = pd.DataFrame({"device": "W1", "time": times})
    labels = pd.DataFrame(
        {
            "device": ["W1", "W1", "W2"],
            "start": [T0 + pd.Timedelta(seconds=1000), T0 + pd.Timedelta(seconds=2000), T0],
            "end": [T0 + pd.Timedelta(seconds=1400), T0 + pd.Timedelta(seconds=2400), T0],
            "kind": ["fall", "off_wrist", "fever"],
        }
    )
    got = window_labels(windows, labels, window_seconds=60).tolist()
    fall = MEDICAL.index("fall") + 1
    assert got[0] == 0 and got[2] == got[3] == fall and got[5] == 0
    assert all(math.isnan(got[i]) for i in (1, 4, 6))  # start, just after the end, device


def test_a_classifier_trained_on_generated_wearers_finds_their_episodes(tmp_path: Path) -> None:
    start = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    write_wearables_files(tmp_path, 3, 2.0, seed=11, start=start, episodes_per_hour=1.5)
    frame = labelled_windows(tmp_path, 60, 10)
    assert set(frame[LABEL]) >= {0} and frame[LABEL].max() >= 1
    assert (frame[ABNORMAL] == (frame[LABEL] > 0)).all()
    model = episode_pipeline(0).fit(frame, frame[LABEL])  # columns picked by name
    scores = metrics(model, frame)
    # fitted and scored on the same windows: a check of the plumbing, not of the model
    assert scores["windows"] == len(frame) and scores["macro_f1"] > 0.9
    assert list(model[:-1].get_feature_names_out()) == [f"window__{f}" for f in FEATURES]
