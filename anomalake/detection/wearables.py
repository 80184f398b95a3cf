"""Windowed features of a wearer's E4 frames: one function for stream, batch and evaluation.

A frame is one device-second of every signal (:func:`anomalake.loaders.e4.frames`). The
stream keeps each device's last frames and calls :func:`window_features` on them; batch
jobs, training and offline evaluation cut an export into the same frames
(:func:`export_features`) and call the same function, so a model sees the same numbers
wherever it runs.

Per window (``len(frames)`` seconds):

* heart: ``hr_mean`` (Empatica's HR), ``beats``, ``hr_beats`` (60 / mean interval),
  ``rmssd_ms`` and ``sdnn_ms`` (heart-rate variability from the intervals);
* skin: ``eda_level`` (µS), ``scr_per_min`` (skin-conductance responses: rises of at
  least 0.05 µS within two seconds, counted once each);
* motion: ``activity`` (mean deviation of the acceleration's magnitude from 1 g, in g)
  and ``acc_peak`` (the largest magnitude, g);
* temperature: ``temp_mean`` (°C) and ``temp_slope`` (°C per minute, least squares);
* contact: ``bvp_std`` (near 0 off the wrist, huge without skin contact) and
  ``samples`` (the share of expected samples present).

A feature with too little data in the window is NaN (no beats: no heart-rate variability).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

FEATURES = (
    "hr_mean",
    "beats",
    "hr_beats",
    "rmssd_ms",
    "sdnn_ms",
    "eda_level",
    "scr_per_min",
    "activity",
    "acc_peak",
    "temp_mean",
    "temp_slope",
    "bvp_std",
    "samples",
)
#: Samples a full frame holds per signal (E4 rates).
EXPECTED = {"acc": 32, "bvp": 64, "eda": 4, "temp": 4}
ONE_G = 64.0  # ACC is in 1/64 g
SCR_RISE_US = 0.05
SCR_WITHIN_SAMPLES = 8  # two seconds at 4 Hz


def _values(frames: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """The non-null samples of ``key`` across ``frames``, in order."""
    out = [v for f in frames for v in f.get(key) or () if v is not None]
    return np.asarray(out, dtype=float)


def _scr_count(eda: np.ndarray) -> int:
    """Rises of at least :data:`SCR_RISE_US` within :data:`SCR_WITHIN_SAMPLES`, each once."""
    count, i, n = 0, 0, len(eda)
    while i < n - 1:
        ahead = eda[i + 1 : i + 1 + SCR_WITHIN_SAMPLES]
        if len(ahead) and ahead.max() - eda[i] >= SCR_RISE_US:
            count += 1
            # skip to the peak of this response
            j = i + 1 + int(np.argmax(ahead))
            while j + 1 < n and eda[j + 1] >= eda[j]:
                j += 1
            i = j + 1
        else:
            i += 1
    return count


def window_features(frames: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The features of one window of consecutive frames of one device."""
    seconds = len(frames)
    nan = float("nan")
    out: dict[str, float] = dict.fromkeys(FEATURES, nan)
    if seconds == 0:
        return out
    hr = _values(frames, "hr")
    out["hr_mean"] = float(hr.mean()) if len(hr) else nan
    intervals = np.asarray(
        [beat[1] for f in frames for beat in f.get("ibi") or () if beat and beat[1]],
        dtype=float,
    )
    out["beats"] = float(len(intervals))
    if len(intervals) >= 3:
        out["hr_beats"] = float(60.0 / intervals.mean())
        out["rmssd_ms"] = float(np.sqrt(np.mean(np.diff(intervals) ** 2)) * 1000)
        out["sdnn_ms"] = float(intervals.std(ddof=1) * 1000)
    eda = _values(frames, "eda")
    if len(eda):
        out["eda_level"] = float(eda.mean())
        out["scr_per_min"] = _scr_count(eda) * 60.0 / seconds
    acc = np.asarray(
        [v for f in frames for v in f.get("acc") or () if v is not None], dtype=float
    ).reshape(-1, 3)
    if len(acc):
        magnitude = np.sqrt((acc**2).sum(axis=1)) / ONE_G
        out["activity"] = float(np.abs(magnitude - 1.0).mean())
        out["acc_peak"] = float(magnitude.max())
    temp = _values(frames, "temp")
    if len(temp):
        out["temp_mean"] = float(temp.mean())
        if len(temp) >= 8:
            minutes = np.arange(len(temp)) / (EXPECTED["temp"] * 60.0)
            out["temp_slope"] = float(np.polyfit(minutes, temp, 1)[0])
    bvp = _values(frames, "bvp")
    out["bvp_std"] = float(bvp.std()) if len(bvp) > 1 else nan
    expected = seconds * sum(EXPECTED.values())
    present = sum(len(_values(frames, k)) for k in ("bvp", "eda", "temp")) + len(acc)
    out["samples"] = present / expected
    return out


def rolling_windows(
    frames: Iterable[dict[str, Any]], window_seconds: int, step_seconds: int
) -> Iterable[tuple[int, list[dict[str, Any]]]]:
    """``(time of the window's last second, its frames)``, a window every ``step_seconds``.

    A window ends at each frame whose time is a multiple of ``step_seconds`` once
    ``window_seconds`` of frames are there; it holds the frames of the last
    ``window_seconds`` seconds (fewer if some seconds never came).
    """
    recent: list[dict[str, Any]] = []
    first: int | None = None
    for frame in frames:
        now = int(frame["time"])
        first = now if first is None else first
        recent.append(frame)
        recent = [f for f in recent if int(f["time"]) > now - window_seconds]
        if now - first + 1 >= window_seconds and (now + 1) % step_seconds == 0:
            yield now, list(recent)


def export_features(
    frames: Iterable[dict[str, Any]], window_seconds: int = 60, step_seconds: int = 10
) -> pd.DataFrame:
    """Features of every window of one device's frames (batch, training, evaluation)."""
    rows = [
        {"device": window[-1]["device"], "time": end, **window_features(window)}
        for end, window in rolling_windows(frames, window_seconds, step_seconds)
    ]
    frame = pd.DataFrame(rows, columns=["device", "time", *FEATURES])
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    return frame
