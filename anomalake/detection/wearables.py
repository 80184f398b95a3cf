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

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Episode kinds that are medicine: a caregiver is told (the classifier's classes 1..7,
#: class 0 being normal).
MEDICAL = (
    "tachycardia_at_rest",
    "bradycardia",
    "irregular_rhythm",
    "acute_stress",
    "fall",
    "fever",
    "hypothermia",
)
#: Device states: data quality, never a medical alert.
DEVICE = ("off_wrist", "signal_loss")
KINDS = MEDICAL + DEVICE
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
    "hr_rel",
    "temp_rel",
    "eda_rel",
)
#: The wearer's own slow baselines the ``*_rel`` features are read against: feature, and
#: the window feature it follows (an exponential average, half-life BASELINE_HALF_LIFE_S).
BASELINES = {"hr_rel": "hr_beats", "temp_rel": "temp_mean", "eda_rel": "eda_level"}
BASELINE_HALF_LIFE_S = 3600.0
#: The most one window's distance from a baseline counts in its update (a Huber-style
#: clip): an episode hours long (hypothermia, fever) barely drags the baseline it is
#: measured against, which would read the recovery after it as the opposite episode.
BASELINE_CLIP = {"hr_rel": 10.0, "temp_rel": 0.3, "eda_rel": 1.0}
#: The baselines are read only once they have followed this long (NaN before).
BASELINE_WARM_UP_S = 900.0
#: Samples a full frame holds per signal (E4 rates).
EXPECTED = {"acc": 32, "bvp": 64, "eda": 4, "temp": 4}
ONE_G = 64.0  # ACC is in 1/64 g
SCR_RISE_US = 0.05
SCR_WITHIN_SAMPLES = 8  # two seconds at 4 Hz


def _present(values: Iterable[Any] | None) -> list[float]:
    return [float(v) for v in values or () if v is not None]


def summarise(frame: dict[str, Any]) -> dict[str, Any]:
    """What the features need of one frame: a few numbers, JSON-able (a stream's state).

    ``t`` (the second), the samples of the slow signals (``hr``, ``eda``, ``temp``), the
    beats' intervals (``ibi``), and running aggregates of the fast ones: ``acc`` = [count,
    sum of |magnitude - 1 g|, largest magnitude], ``bvp`` = [count, mean, sum of squared
    deviations] (combined exactly across seconds, Chan et al.).
    """
    acc = np.asarray([v for v in frame.get("acc") or () if v is not None], dtype=float).reshape(
        -1, 3
    )
    magnitude = np.sqrt((acc**2).sum(axis=1)) / ONE_G
    bvp = np.asarray(_present(frame.get("bvp")), dtype=float)
    return {
        "t": int(frame["time"]),
        "hr": _present(frame.get("hr")),
        "ibi": [float(b[1]) for b in frame.get("ibi") or () if b and b[1]],
        "eda": _present(frame.get("eda")),
        "temp": _present(frame.get("temp")),
        "acc": [
            len(magnitude),
            float(np.abs(magnitude - 1.0).sum()),
            float(magnitude.max()) if len(magnitude) else 0.0,
        ],
        "bvp": [
            len(bvp),
            float(bvp.mean()) if len(bvp) else 0.0,
            float(((bvp - bvp.mean()) ** 2).sum()) if len(bvp) else 0.0,
        ],
    }


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


def _joined(summaries: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.asarray([v for s in summaries for v in s[key]], dtype=float)


def summary_features(summaries: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The features of one window from its seconds' :func:`summarise` (the one computation)."""
    seconds = len(summaries)
    nan = float("nan")
    out: dict[str, float] = dict.fromkeys(FEATURES, nan)
    if seconds == 0:
        return out
    hr = _joined(summaries, "hr")
    out["hr_mean"] = float(hr.mean()) if len(hr) else nan
    intervals = _joined(summaries, "ibi")
    out["beats"] = float(len(intervals))
    if len(intervals) >= 3:
        out["hr_beats"] = float(60.0 / intervals.mean())
        out["rmssd_ms"] = float(np.sqrt(np.mean(np.diff(intervals) ** 2)) * 1000)
        out["sdnn_ms"] = float(intervals.std(ddof=1) * 1000)
    eda = _joined(summaries, "eda")
    if len(eda):
        out["eda_level"] = float(eda.mean())
        out["scr_per_min"] = _scr_count(eda) * 60.0 / seconds
    acc = np.asarray([s["acc"] for s in summaries], dtype=float)
    acc_n = acc[:, 0].sum()
    if acc_n:
        out["activity"] = float(acc[:, 1].sum() / acc_n)
        out["acc_peak"] = float(acc[acc[:, 0] > 0, 2].max())
    temp = _joined(summaries, "temp")
    if len(temp):
        out["temp_mean"] = float(temp.mean())
        if len(temp) >= 8:
            minutes = np.arange(len(temp)) / (EXPECTED["temp"] * 60.0)
            out["temp_slope"] = float(np.polyfit(minutes, temp, 1)[0])
    bvp = np.asarray([s["bvp"] for s in summaries], dtype=float)
    n = bvp[:, 0]
    total = n.sum()
    if total > 1:
        mean = float((n * bvp[:, 1]).sum() / total)
        m2 = float(bvp[:, 2].sum() + (n * (bvp[:, 1] - mean) ** 2).sum())
        out["bvp_std"] = float(np.sqrt(m2 / total))
    expected = seconds * sum(EXPECTED.values())
    out["samples"] = float(total + len(eda) + len(temp) + acc_n) / expected
    return out


def window_features(frames: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The features of one window of consecutive frames of one device."""
    return summary_features([summarise(f) for f in frames])


class Windows:
    """A device's last ``window_seconds`` of summaries; a window ends every ``step_seconds``.

    The stream keeps one per device in its state (:meth:`state`, :meth:`from_state`);
    :func:`rolling_windows` and :func:`export_features` run the same one over an export.
    A window ends at each frame whose time + 1 is a multiple of ``step_seconds`` once
    ``window_seconds`` have passed since the device's first frame; it holds the frames of
    the last ``window_seconds`` seconds (fewer if some seconds never came).
    """

    def __init__(
        self,
        window_seconds: int,
        step_seconds: int,
        recent: list[dict[str, Any]] | None = None,
        first: int | None = None,
    ) -> None:
        self.window_seconds, self.step_seconds = window_seconds, step_seconds
        self.recent: list[dict[str, Any]] = recent or []
        self.first = first
        self.baseline: dict[str, float] = {}

    @property
    def last(self) -> int | None:
        """The time of the latest frame taken."""
        return self.recent[-1]["t"] if self.recent else None

    def push(self, summary: dict[str, Any]) -> bool:
        """Take the next second's summary; true if a window ends with it."""
        now = int(summary["t"])
        self.first = now if self.first is None else self.first
        self.recent.append(summary)
        cut = now - self.window_seconds
        if self.recent[0]["t"] <= cut:
            self.recent = [s for s in self.recent if s["t"] > cut]
        return now - self.first + 1 >= self.window_seconds and (now + 1) % self.step_seconds == 0

    def end_window(self) -> dict[str, float]:
        """The features of the window held now; then the wearer's baselines take it in.

        ``*_rel`` features are the window's value less the wearer's baseline before it
        (NaN until it has followed :data:`BASELINE_WARM_UP_S` of worn windows): a rate
        of 45 is low for one wearer, usual asleep for another. Windows of a device that
        reads no body (:func:`device_state`) leave the baselines as they are.
        """
        out = summary_features(self.recent)
        ready = self.baseline.get("seconds", 0.0) >= BASELINE_WARM_UP_S
        for rel, source in BASELINES.items():
            out[rel] = out[source] - self.baseline.get(rel, float("nan")) if ready else math.nan
        if device_state(out) is None:
            self.baseline["seconds"] = self.baseline.get("seconds", 0.0) + self.step_seconds
            weight = 1.0 - 0.5 ** (self.step_seconds / BASELINE_HALF_LIFE_S)
            for rel, source in BASELINES.items():
                value, before = out[source], self.baseline.get(rel, out[source])
                if math.isfinite(value):
                    change = value - before
                    if ready:
                        change = min(max(change, -BASELINE_CLIP[rel]), BASELINE_CLIP[rel])
                    self.baseline[rel] = before + weight * change
        return out

    def state(self) -> dict[str, Any]:
        """JSON-able state (the summaries, the first frame's time, the baselines)."""
        return {"first": self.first, "recent": self.recent, "baseline": self.baseline}

    @classmethod
    def from_state(cls, window_seconds: int, step_seconds: int, doc: dict[str, Any]) -> Windows:
        """Restore from :meth:`state`."""
        windows = cls(window_seconds, step_seconds, list(doc["recent"]), doc["first"])
        windows.baseline = dict(doc.get("baseline") or {})
        return windows


def rolling_windows(
    frames: Iterable[dict[str, Any]], window_seconds: int, step_seconds: int
) -> Iterable[tuple[int, list[dict[str, Any]]]]:
    """``(time of the window's last second, its frames)``, a window every ``step_seconds``."""
    windows = Windows(window_seconds, step_seconds)
    recent: list[dict[str, Any]] = []
    for frame in frames:
        now = int(frame["time"])
        recent = [f for f in recent if int(f["time"]) > now - window_seconds] + [frame]
        if windows.push(summarise(frame)):
            yield now, list(recent)


def export_features(
    frames: Iterable[dict[str, Any]], window_seconds: int = 60, step_seconds: int = 10
) -> pd.DataFrame:
    """Features of every window of one device's frames (batch, training, evaluation)."""
    windows = Windows(window_seconds, step_seconds)
    rows = [
        {"device": frame["device"], "time": int(frame["time"]), **windows.end_window()}
        for frame in frames
        if windows.push(summarise(frame))
    ]
    frame = pd.DataFrame(rows, columns=["device", "time", *FEATURES])
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    return frame


#: A window holding less than this share of the expected samples has lost its signal.
MIN_SAMPLES = 0.5
#: Skin conductance below this (µS) with no beat: the sensor touches no skin.
NO_SKIN_EDA_US = 0.05
#: Pulse-wave spread below this with no skin: the device lies still, off the wrist.
FLAT_BVP = 1.0


def device_state(features: dict[str, float]) -> str | None:
    """``off_wrist`` or ``signal_loss`` when a window says the device cannot read a body.

    Too few samples, or no beat and no skin conductance: no skin contact. Off the wrist
    the pulse wave is flat as well (the device lies still); worn without contact it is
    noise. None when the device reads a body.
    """
    if not features["samples"] >= MIN_SAMPLES:
        return "signal_loss"
    skin = features["eda_level"]
    if features["beats"] == 0 and not skin >= NO_SKIN_EDA_US:
        return "off_wrist" if not features["bvp_std"] >= FLAT_BVP else "signal_loss"
    return None
