"""Synthetic Empatica E4 exports of wearers, with labelled episodes and device states.

One export folder per wearer (``<start>_<serial>``, as Empatica names them) in the E4
format :mod:`anomalake.loaders.e4` reads, and one ``labels.csv`` for all of them
(``device, start, end, kind, category``). Per wearer, one second at a time:

* **activity** — asleep at night (23:00-07:00 UTC), otherwise resting or walking in
  spells of minutes (a two-state Markov chain);
* **heart** — a rate that follows activity (asleep -10, walking +35 beats/min around the
  wearer's resting rate) and a circadian rhythm, smoothed; beats drawn from it with
  respiratory sinus arrhythmia and beat-to-beat variability (``IBI.csv``); ``HR.csv`` is
  the mean rate of the last 10 s of beats from 10 s after the start, as Empatica's is;
* **BVP** (64 Hz) — a pulse wave per beat (systolic peak and dicrotic wave), amplitude
  modulated by breathing, with motion artefacts while walking;
* **EDA** (4 Hz) — a tonic level drifting slowly, and phasic skin-conductance responses
  at a rate that depends on activity;
* **TEMP** (4 Hz) — skin temperature drifting slowly, warmer asleep;
* **ACC** (32 Hz, 1/64 g) — gravity in the posture of the activity, steps at ~1.9 Hz
  while walking, stillness asleep.

Labelled episodes (``category`` ``medical``): ``tachycardia_at_rest`` (rate 130-150 while
resting), ``bradycardia`` (38-45), ``irregular_rhythm`` (intervals vary by up to a
third), ``acute_stress`` (a storm of skin-conductance responses, the tonic level and the
rate up), ``fall`` (an impact, then lying still), ``fever`` and ``hypothermia`` (skin
temperature trends up by ~1.8 °C or down by ~3 °C). Device states (``category``
``device``), which are data quality and never medicine: ``off_wrist`` (temperature falls
towards the room's, EDA and BVP flat, no beats, the device still) and ``signal_loss``
(no skin contact: EDA near zero, BVP noise, no beats). The first 15 minutes of a
wearer are normal (detectors learn there); episodes never overlap.

With ``faults`` the files also get what a truncated or damaged export has (a truncated
last ACC row, an EDA row that is ``nan``, an empty EDA row), listed in ``faults.csv``.
Everything is deterministic given the seed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from anomalake.detection.wearables import DEVICE, KINDS, MEDICAL

#: Episode length in seconds (low, high) per kind.
LENGTHS = {
    "tachycardia_at_rest": (300, 900),
    "bradycardia": (300, 900),
    "irregular_rhythm": (300, 1200),
    "acute_stress": (300, 600),
    "fall": (180, 600),
    "fever": (1800, 3600),
    "hypothermia": (1800, 3600),
    "off_wrist": (300, 1200),
    "signal_loss": (120, 600),
}
DEFAULT_START = datetime(2026, 3, 9, 6, 0, 0, tzinfo=UTC)
WARM_UP_SECONDS = 900
SLEEP, REST, WALK, LYING = 0, 1, 2, 3
RATES = {"ACC": 32, "BVP": 64, "EDA": 4, "TEMP": 4, "HR": 1}
LABEL_COLUMNS = ("device", "start", "end", "kind", "category")


@dataclass(frozen=True)
class Episode:
    """One labelled episode of a wearer, in seconds from the session's start."""

    device: str
    kind: str
    start: int
    end: int

    @property
    def category(self) -> str:
        """``medical`` or ``device``."""
        return "device" if self.kind in DEVICE else "medical"


def serial(i: int) -> str:
    """The device serial of wearer ``i`` (``W00001``, ...)."""
    return f"W{i:05d}"


def _rng(seed: int, device: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(device.encode())])


def _activity(rng: np.random.Generator, start: datetime, seconds: int) -> np.ndarray:
    """Per second: asleep at night, else resting or walking in spells of minutes."""
    hours = (start.hour + start.minute / 60 + np.arange(seconds) / 3600) % 24
    state = np.where((hours >= 23) | (hours < 7), SLEEP, REST)
    walking, t = False, 0
    while t < seconds:
        spell = int(rng.exponential(360 if walking else 1200)) + 60
        if walking:
            day = state[t : t + spell] != SLEEP
            state[t : t + spell][day] = WALK
        walking, t = not walking, t + spell
    return state


def _episodes(
    rng: np.random.Generator, device: str, seconds: int, per_hour: float
) -> list[Episode]:
    """Non-overlapping episodes after the warm-up, at least one if there is room."""
    room = seconds - WARM_UP_SECONDS
    if room < 600:
        return []
    count = max(1, int(rng.poisson(per_hour * seconds / 3600)))
    taken: list[Episode] = []
    for _ in range(count * 20):
        if len(taken) == count:
            break
        kind = str(rng.choice(KINDS, p=_KIND_WEIGHTS))
        low, high = LENGTHS[kind]
        length = int(rng.integers(low, high + 1))
        if length > room - 60:
            continue
        begin = int(rng.integers(WARM_UP_SECONDS, seconds - length))
        # ten minutes of normal life between two episodes
        if all(begin >= e.end + 600 or begin + length + 600 <= e.start for e in taken):
            taken.append(Episode(device, kind, begin, begin + length))
    return sorted(taken, key=lambda e: e.start)


_KIND_WEIGHTS = np.array([1.0] * len(MEDICAL) + [0.6] * len(DEVICE))
_KIND_WEIGHTS /= _KIND_WEIGHTS.sum()


def _ramp(n: int, up: float) -> np.ndarray:
    """0 -> 1 over the first ``up`` of ``n`` seconds, then 1."""
    return np.clip(np.arange(n) / max(1.0, up * n), 0.0, 1.0)


@dataclass
class _Drivers:
    """Per-second quantities the signals are drawn from."""

    activity: np.ndarray
    hr: np.ndarray
    irregular: np.ndarray
    no_beats: np.ndarray
    stress: np.ndarray
    temp_shift: np.ndarray
    off_wrist: np.ndarray
    no_contact: np.ndarray
    impacts: list[int]


def _drivers(
    rng: np.random.Generator, start: datetime, seconds: int, episodes: list[Episode]
) -> _Drivers:
    activity = _activity(rng, start, seconds)
    resting = rng.uniform(58, 76)
    d = _Drivers(
        activity=activity,
        hr=np.zeros(seconds),
        irregular=np.zeros(seconds, dtype=bool),
        no_beats=np.zeros(seconds, dtype=bool),
        stress=np.zeros(seconds),
        temp_shift=np.zeros(seconds),
        off_wrist=np.zeros(seconds, dtype=bool),
        no_contact=np.zeros(seconds, dtype=bool),
        impacts=[],
    )
    target_override = np.full(seconds, np.nan)
    hr_add = np.zeros(seconds)
    for e in episodes:
        span = slice(e.start, e.end)
        n = e.end - e.start
        if e.kind == "tachycardia_at_rest":
            activity[span] = REST
            target_override[span] = rng.uniform(130, 150)
        elif e.kind == "bradycardia":
            activity[span] = np.where(activity[span] == WALK, REST, activity[span])
            target_override[span] = rng.uniform(38, 45)
        elif e.kind == "irregular_rhythm":
            d.irregular[span] = True
        elif e.kind == "acute_stress":
            activity[span] = np.where(activity[span] == SLEEP, REST, activity[span])
            d.stress[span] = _ramp(n, 0.1)
            hr_add[span] += 25 * _ramp(n, 0.1)
        elif e.kind == "fall":
            activity[span] = LYING
            d.impacts.append(e.start)
            hr_add[e.start : e.start + 120] += 15
        elif e.kind == "fever":
            d.temp_shift[span] = 1.8 * _ramp(n, 0.7)
            hr_add[span] += 10 * _ramp(n, 0.7)
        elif e.kind == "hypothermia":
            d.temp_shift[span] = -3.0 * _ramp(n, 0.7)
        elif e.kind == "off_wrist":
            d.off_wrist[span] = d.no_beats[span] = d.no_contact[span] = True
        elif e.kind == "signal_loss":
            d.no_beats[span] = d.no_contact[span] = True
    hours = (start.hour + start.minute / 60 + np.arange(seconds) / 3600) % 24
    by_activity = np.select(
        [activity == SLEEP, activity == WALK, activity == LYING], [-10.0, 35.0, 2.0], 0.0
    )
    target = resting + by_activity + 3 * np.sin(2 * np.pi * (hours - 10) / 24) + hr_add
    target = np.where(np.isnan(target_override), target, target_override)
    smooth = pd.Series(target).ewm(halflife=15).mean().to_numpy()
    d.hr = np.clip(smooth + rng.normal(0, 1.0, seconds).cumsum() * 0.02, 30, 200)
    return d


def _beats(rng: np.random.Generator, d: _Drivers, seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """Beat times (s) and the intervals that end there."""
    times, intervals = [], []
    t = float(rng.uniform(0.2, 1.0))
    breathing = {SLEEP: 0.22, REST: 0.25, WALK: 0.35, LYING: 0.25}
    while t < seconds:
        second = int(t)
        rr = 60.0 / d.hr[second]
        f = breathing[int(d.activity[second])]
        rr *= 1 + 0.04 * np.sin(2 * np.pi * f * t) + rng.normal(0, 0.015)
        if d.irregular[second]:
            rr *= rng.uniform(0.7, 1.35)
        t += rr
        if t < seconds:
            times.append(t)
            intervals.append(rr)
    return np.array(times), np.array(intervals)


def _bvp(rng: np.random.Generator, d: _Drivers, beats: np.ndarray, seconds: int) -> np.ndarray:
    n = seconds * RATES["BVP"]
    ts = np.arange(n) / RATES["BVP"]
    edges = np.concatenate([[0.0], beats, [float(seconds) + 1.0]])
    k = np.searchsorted(edges, ts, side="right") - 1
    phase = (ts - edges[k]) / (edges[k + 1] - edges[k])
    wave = np.exp(-(((phase - 0.25) / 0.09) ** 2)) + 0.35 * np.exp(-(((phase - 0.55) / 0.12) ** 2))
    amplitude = rng.uniform(40, 90) * (1 + 0.15 * np.sin(2 * np.pi * 0.25 * ts))
    per_sample = np.repeat(np.arange(seconds), RATES["BVP"])
    walking = d.activity[per_sample] == WALK
    noise = rng.normal(0, 1.5, n) + walking * rng.normal(0, 18, n)
    bvp = amplitude * (wave - 0.3) + noise + 5 * np.sin(2 * np.pi * 0.05 * ts)
    no_contact = d.no_contact[per_sample]
    off = d.off_wrist[per_sample]
    bvp = np.where(no_contact & ~off, rng.normal(0, 120, n), bvp)
    return np.where(off, rng.normal(0, 0.3, n), bvp)


def _eda(rng: np.random.Generator, d: _Drivers, seconds: int) -> np.ndarray:
    rate = RATES["EDA"]
    n = seconds * rate
    per_sample = np.repeat(np.arange(seconds), rate)
    drift = np.cumsum(rng.normal(0, 0.002, n))
    tonic = rng.uniform(1.0, 4.0) * np.exp(np.clip(drift, -1.0, 1.0))
    tonic *= np.where(d.activity[per_sample] == SLEEP, 0.7, 1.0)
    tonic += 1.5 * d.stress[per_sample]
    per_minute = (
        np.select([d.activity == SLEEP, d.activity == WALK], [0.5, 3.0], 2.0) + 15 * d.stress
    )
    onsets = rng.random(seconds) < per_minute / 60
    impulses = np.zeros(n)
    impulses[np.flatnonzero(onsets) * rate] = np.exp(rng.normal(-1.6, 0.6, int(onsets.sum())))
    kernel_t = np.arange(20 * rate) / rate
    kernel = np.exp(-kernel_t / 4.0) - np.exp(-kernel_t / 0.75)
    phasic = np.convolve(impulses, kernel / kernel.max())[:n]
    eda = tonic + phasic + rng.normal(0, 0.003, n)
    no_contact = d.no_contact[per_sample]
    return np.clip(np.where(no_contact, np.abs(rng.normal(0.01, 0.005, n)), eda), 0.0, None)


def _temp(rng: np.random.Generator, d: _Drivers, seconds: int) -> np.ndarray:
    rate = RATES["TEMP"]
    per_sample = np.repeat(np.arange(seconds), rate)
    base = rng.uniform(32.6, 33.6) + np.select(
        [d.activity == SLEEP, d.activity == WALK], [0.4, -0.3], 0.0
    )
    skin = pd.Series(base).ewm(halflife=300).mean().to_numpy() + d.temp_shift
    # off the wrist it cools towards the room's 24 °C (time constant 3 min), then warms
    room, level, out = 24.0, float(skin[0]), np.empty(seconds)
    for i in range(seconds):
        goal, tau = (room, 180.0) if d.off_wrist[i] else (skin[i], 60.0)
        level += (goal - level) / tau
        out[i] = level
    temp = out[per_sample] + rng.normal(0, 0.02, seconds * rate)
    return np.round(temp, 2)


def _acc(rng: np.random.Generator, d: _Drivers, seconds: int) -> np.ndarray:
    rate = RATES["ACC"]
    n = seconds * rate
    per_sample = np.repeat(np.arange(seconds), rate)
    state = d.activity[per_sample]
    postures = {
        SLEEP: (5.0, 62.0, 12.0),
        REST: (-12.0, 22.0, 58.0),
        WALK: (-40.0, 10.0, 48.0),
        LYING: (60.0, -5.0, 20.0),
    }
    gravity = np.array([postures[int(s)] for s in range(4)])[state]
    ts = np.arange(n) / rate
    step = np.sin(2 * np.pi * 1.9 * ts)[:, None] * np.array([18.0, 9.0, 12.0])
    noise_scale = np.select([state == WALK, state == REST], [4.0, 1.5], 0.4)[:, None]
    acc = gravity + (state == WALK)[:, None] * step + rng.normal(0, 1, (n, 3)) * noise_scale
    off = d.off_wrist[per_sample]
    acc[off] = np.array([0.0, 0.0, 64.0]) + rng.normal(0, 0.2, (int(off.sum()), 3))
    for second in d.impacts:
        hit = slice(second * rate, second * rate + rate // 2)
        acc[hit] = rng.uniform(-127, 127, (acc[hit].shape[0], 3))
    return np.clip(np.round(acc), -128, 127).astype(int)


def _hr_file(beats: np.ndarray, intervals: np.ndarray, seconds: int) -> np.ndarray:
    """Empatica's HR: from 10 s after the start, the mean rate of the last 10 s of beats."""
    out, last = [], float(60.0 / intervals[0]) if len(intervals) else 60.0
    for second in range(10, seconds):
        lo, hi = np.searchsorted(beats, [second - 10, second])
        if hi > lo:
            last = float(np.mean(60.0 / intervals[lo:hi]))
        out.append(last)
    return np.round(np.array(out), 2)


def _header(start: float, rate: int, columns: int = 1) -> str:
    return (
        ", ".join([f"{start:.6f}"] * columns) + "\n" + ", ".join([f"{rate:.6f}"] * columns) + "\n"
    )


def _lines(values: np.ndarray, fmt: str) -> list[str]:
    if values.ndim == 1:
        return [fmt % v for v in values.tolist()]
    return [",".join(fmt % v for v in row) for row in values.tolist()]


def write_wearer(
    out: Path,
    device: str,
    start: datetime,
    seconds: int,
    seed: int,
    episodes_per_hour: float = 0.5,
    faults: bool = False,
    schedule: list[tuple[str, int, int]] | None = None,
) -> tuple[Path, list[Episode], list[dict[str, object]]]:
    """One wearer's E4 export folder; returns it, its episodes and the faults written.

    ``schedule`` — ``(kind, start, end)`` in seconds — replaces the random episodes.
    """
    rng = _rng(seed, device)
    if schedule is None:
        episodes = _episodes(rng, device, seconds, episodes_per_hour)
    else:
        episodes = [Episode(device, kind, begin, end) for kind, begin, end in schedule]
    d = _drivers(rng, start, seconds, episodes)
    beats, intervals = _beats(rng, d, seconds)
    keep = ~d.no_beats[np.minimum(beats.astype(int), seconds - 1)]
    beats, intervals = beats[keep], intervals[keep]
    unix = start.timestamp()
    folder = out / f"{int(unix)}_{device}"
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "ACC": (_header(unix, 32, 3), _lines(_acc(rng, d, seconds), "%d")),
        "BVP": (_header(unix, 64), _lines(np.round(_bvp(rng, d, beats, seconds), 2), "%.2f")),
        "EDA": (_header(unix, 4), _lines(_eda(rng, d, seconds), "%.6f")),
        "TEMP": (_header(unix, 4), _lines(_temp(rng, d, seconds), "%.2f")),
        "HR": (_header(unix + 10, 1), _lines(_hr_file(beats, intervals, seconds), "%.2f")),
        "IBI": (
            f"{unix:.6f}, IBI\n",
            [f"{t:.6f},{rr:.6f}" for t, rr in zip(beats.tolist(), intervals.tolist(), strict=True)],
        ),
    }
    written: list[dict[str, object]] = []
    if faults:
        header, rows = texts["ACC"]
        rows[-1] = rows[-1].rsplit(",", 1)[0]  # the export stopped mid-row
        written.append(
            {"device": device, "file": "ACC.csv", "line": len(rows) + 2, "fault": "truncated"}
        )
        header, rows = texts["EDA"]
        for at, text, fault in ((len(rows) // 3, "nan", "nan"), (2 * len(rows) // 3, "", "empty")):
            rows[at] = text
            written.append({"device": device, "file": "EDA.csv", "line": at + 3, "fault": fault})
    for stem, (header, rows) in texts.items():
        (folder / f"{stem}.csv").write_text(header + "\n".join(rows) + "\n")
    presses = [e.start + 30 for e in episodes if e.kind == "acute_stress"]
    (folder / "tags.csv").write_text("".join(f"{unix + p:.2f}\n" for p in presses))
    return folder, episodes, written


def write_wearables_files(
    out: Path,
    wearers: int,
    hours: float,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    episodes_per_hour: float = 0.5,
    faults: bool = False,
) -> dict[str, int]:
    """E4 exports of ``wearers`` wearers, ``labels.csv`` and, with ``faults``, ``faults.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    seconds = int(hours * 3600)
    labels: list[dict[str, object]] = []
    all_faults: list[dict[str, object]] = []
    for i in range(1, wearers + 1):
        device = serial(i)
        _, episodes, written = write_wearer(
            out, device, start, seconds, seed, episodes_per_hour, faults
        )
        all_faults += written
        for e in episodes:
            labels.append(
                {
                    "device": device,
                    "start": pd.Timestamp(start.timestamp() + e.start, unit="s", tz="UTC"),
                    "end": pd.Timestamp(start.timestamp() + e.end, unit="s", tz="UTC"),
                    "kind": e.kind,
                    "category": e.category,
                }
            )
    pd.DataFrame(labels, columns=list(LABEL_COLUMNS)).to_csv(out / "labels.csv", index=False)
    if faults:
        pd.DataFrame(all_faults, columns=["device", "file", "line", "fault"]).to_csv(
            out / "faults.csv", index=False
        )
    return {"wearers": wearers, "episodes": len(labels), "faults": len(all_faults)}


def load_labels(path: Path) -> pd.DataFrame:
    """``labels.csv`` of a generated folder (``start`` and ``end`` as UTC times)."""
    labels = pd.read_csv(path / "labels.csv" if path.is_dir() else path)
    for column in ("start", "end"):
        labels[column] = pd.to_datetime(labels[column], utc=True)
    return labels


def generate(out: Path, entities: int, hours: float, seed: int, faults: bool) -> str:
    """The use case's generator (``anomalake generate wearables``): one export per wearer."""
    counts = write_wearables_files(out, wearers=entities, hours=hours, seed=seed, faults=faults)
    return (
        f"wrote {counts['wearers']} E4 exports with {counts['episodes']} labelled episodes "
        f"({counts['faults']} damaged rows) and labels.csv to {out}"
    )
