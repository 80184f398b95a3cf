"""Windowed wearables features: known values by hand, and episodes that show in them."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from anomalake.detection.wearables import (
    FEATURES,
    export_features,
    rolling_windows,
    window_features,
)
from anomalake.generators.wearables import KINDS, write_wearer
from anomalake.loaders.e4 import frames, load_export


def _frame(second: int, **signals: Any) -> dict[str, Any]:
    frame = {"device": "d", "time": second, "acc": [], "bvp": [], "eda": [], "temp": []}
    frame.update({"hr": [], "ibi": [], "tags": []})
    return frame | signals


def test_known_windows_give_known_features() -> None:
    window = []
    for s in range(60):
        window.append(
            _frame(
                s,
                acc=[[0, 0, 64]] * 32,
                bvp=[1.0, -1.0] * 32,
                # flat 1 µS but for two responses: +0.1 µS at 10 s and at 40 s
                eda=[1.1 if s in (10, 40) else 1.0] * 4,
                temp=[33.0 + 0.01 * (4 * s + i) for i in range(4)],
                hr=[60.0],
                ibi=[[0.5, 1.0]],
            )
        )
    f = window_features(window)
    assert set(f) == set(FEATURES)
    assert (f["hr_mean"], f["beats"], f["hr_beats"]) == (60.0, 60.0, 60.0)
    assert f["rmssd_ms"] == 0.0 and f["sdnn_ms"] == 0.0
    assert f["activity"] == 0.0 and f["acc_peak"] == 1.0
    assert f["scr_per_min"] == 2.0 and f["eda_level"] == pytest.approx(1.0 + 0.2 / 60)
    assert f["temp_slope"] == pytest.approx(2.4)  # 0.01 °C a sample, 240 samples a minute
    assert f["bvp_std"] == 1.0 and f["samples"] == 1.0

    # lost samples and no beats: the share drops and heart-rate variability is unknown
    sparse = [_frame(s, bvp=[None] * 64, eda=[1.0] * 4, temp=[33.0] * 4) for s in range(10)]
    g = window_features(sparse)
    assert g["samples"] == pytest.approx(80 / (10 * 104)) and g["beats"] == 0.0
    assert math.isnan(g["rmssd_ms"]) and math.isnan(g["activity"])
    assert all(math.isnan(v) for v in window_features([]).values())


def test_windows_end_every_step_once_full() -> None:
    ends = [(end, len(w)) for end, w in rolling_windows((_frame(s) for s in range(100)), 30, 10)]
    assert ends == [(29, 30), (39, 30), (49, 30), (59, 30), (69, 30), (79, 30), (89, 30), (99, 30)]
    gappy = [_frame(s) for s in range(100) if not 50 <= s < 65]
    assert dict((end, len(w)) for end, w in rolling_windows(iter(gappy), 30, 10)) == {
        29: 30,
        39: 30,
        49: 30,
        69: 15,  # 40-49 and 65-69
        79: 15,
        89: 25,
        99: 30,
    }


def test_episodes_show_in_the_features(tmp_path: Path) -> None:
    start = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    schedule = [(kind, 900 + 900 * i, 1200 + 900 * i) for i, kind in enumerate(KINDS)]
    folder, _, _ = write_wearer(tmp_path, "W7", start, schedule[-1][2] + 300, 7, schedule=schedule)
    features = export_features(frames(load_export(folder)), 60, 10)
    t0 = start.timestamp()

    def median(kind: str, feature: str, before: bool = False) -> float:
        begin, end = next((b, e) for k, b, e in schedule if k == kind)
        lo, hi = (begin - 400, begin - 100) if before else (begin + 60, end)
        at = features["time"]
        inside = (at >= pd.Timestamp(t0 + lo, unit="s", tz="UTC")) & (
            at < pd.Timestamp(t0 + hi, unit="s", tz="UTC")
        )
        return float(features.loc[inside, feature].median())

    assert median("tachycardia_at_rest", "hr_beats") > 120
    assert median("tachycardia_at_rest", "activity") < 0.04  # at rest, not walking
    assert median("bradycardia", "hr_beats") < 50
    assert median("irregular_rhythm", "rmssd_ms") > 3 * median("irregular_rhythm", "rmssd_ms", True)
    assert median("acute_stress", "scr_per_min") > 3 * median("acute_stress", "scr_per_min", True)
    assert median("fall", "activity") < 0.02
    assert median("fever", "temp_slope") > 0.1 and median("hypothermia", "temp_slope") < -0.1
    for kind in ("off_wrist", "signal_loss"):
        assert median(kind, "beats") == 0 and median(kind, "eda_level") < 0.05
    assert median("off_wrist", "bvp_std") < 1 < 50 < median("signal_loss", "bvp_std")


def test_an_hour_of_hypothermia_does_not_make_the_recovery_read_as_fever(tmp_path: Path) -> None:
    """The baseline follows the wearer, not the episode: after an hour 3 °C colder the
    skin's usual temperature reads as usual again, not as a rise."""
    start = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    folder, _, _ = write_wearer(
        tmp_path, "W1", start, 3 * 3600, 3, schedule=[("hypothermia", 3600, 7200)]
    )
    features = export_features(frames(load_export(folder)))
    seconds = (features["time"] - pd.Timestamp(start)).dt.total_seconds()
    during = features.loc[(seconds >= 6600) & (seconds < 7200), "temp_rel"].mean()
    after = features.loc[(seconds >= 7800) & (seconds < 10800), "temp_rel"].mean()
    assert during < -2.5
    assert abs(after) < 0.2
