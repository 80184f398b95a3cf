"""The episode classifier's training windows: which windows teach what, and which none."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalake.detection.wearables import FEATURES, MEDICAL
from anomalake.generators.wearables import write_wearables_files
from ml.wearables import (
    ABNORMAL,
    LABEL,
    episode_pipeline,
    labelled_windows,
    metrics,
    operating_point,
    window_labels,
)

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


class _Scores:
    """A stand-in classifier: P(fall) is the window's ``activity`` feature, the rest normal."""

    classes_ = np.arange(len(MEDICAL) + 1)

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        p = rows["activity"].to_numpy()
        out = np.zeros((len(rows), len(self.classes_)))
        out[:, 0], out[:, 1 + MEDICAL.index("fall")] = 1 - p, p
        return out


def test_the_operating_point_is_chosen_as_the_stream_would_fire() -> None:
    """Two hours of one wearer: an episode of high scores, two lower spurious blips.

    A lone window at 0.95 and a two-window run at 0.97 outside the episode: within no
    false alarm at all, firing on the first episode window needs a threshold above 0.97
    with one window; confirming over three windows would also be clean, but later.
    """
    times = pd.date_range(T0, periods=720, freq="10s")
    windows = pd.DataFrame({f: 1.0 for f in FEATURES}, index=range(720))
    windows.insert(0, "device", "W1")
    windows.insert(1, "time", times)
    activity = np.full(720, 0.01)
    activity[60] = 0.95  # 10 minutes in
    activity[360:362] = 0.97  # an hour in
    episode = (times >= T0 + pd.Timedelta(minutes=30)) & (times < T0 + pd.Timedelta(minutes=35))
    activity[episode] = 0.99
    windows["activity"] = activity
    episodes = pd.DataFrame(
        {
            "device": ["W1"],
            "start": [T0 + pd.Timedelta(minutes=30)],
            "end": [T0 + pd.Timedelta(minutes=35)],
            "kind": ["fall"],
        }
    )
    best, tried = operating_point(_Scores(), windows, episodes, 60, 10, false_alarms_per_day=0)
    assert (best.confirm_windows, best.medical.detected, best.medical.false_alarms) == (1, 1, 0)
    assert 0.97 < best.threshold <= 0.99
    assert best.median_delay == 0 and best.wearer_days == pytest.approx((7190 + 60) / 86400)
    loose = [p for p in tried if 0.01 < p.threshold <= 0.95 and p.confirm_windows == 1]
    assert loose and all(p.medical.false_alarms == 2 for p in loose)
    assert all(
        p.medical.false_alarms == 1 for p in tried if p.confirm_windows == 2 and p.threshold <= 0.97
    )
