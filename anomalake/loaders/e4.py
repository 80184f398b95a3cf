"""Empatica E4 exports: one session of one wristband, as a folder or the zip it came in.

An export holds one CSV per signal. In each sampled file (``ACC``, ``BVP``, ``EDA``,
``TEMP``, ``HR``) row 1 is the session start (Unix seconds, UTC) and row 2 the sample rate
(Hz), one value per column; every later row is one sample, so a sample's time is the
start plus its position over the rate. ``IBI.csv`` starts with the session start and the
word ``IBI``; its rows are the time of a beat (seconds since the start) and the interval
that ended there (seconds). ``tags.csv`` holds one Unix time per button press.

:func:`load_export` reads one export onto one clock (UTC times for every sample of every
signal). A row that cannot be a sample — too few or too many values (the last row of a
truncated file), not a number, NaN or infinite — is rejected with its file, line and
reason, and keeps its place: the samples after it keep their times. ``IBI``, ``tags``
and ``HR`` (computed by Empatica from BVP) may be missing; the four sensors may not.
:func:`frames` cuts an export into one frame per device and second, every signal's
samples of that second together: the messages the wearables stream receives.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anomalake.errors import AnomalakeError

#: Sampled signals: file stem -> the names of its columns, the nominal rate (Hz), unit.
SAMPLED: dict[str, tuple[tuple[str, ...], float, str]] = {
    "ACC": (("acc_x", "acc_y", "acc_z"), 32.0, "1/64 g"),
    "BVP": (("bvp",), 64.0, "photoplethysmograph, arbitrary units"),
    "EDA": (("eda",), 4.0, "µS"),
    "TEMP": (("temp",), 4.0, "°C"),
    "HR": (("hr",), 1.0, "beats/min"),
}
#: Files an export must have: the wristband's four sensors.
REQUIRED = ("ACC", "BVP", "EDA", "TEMP")
OPTIONAL = ("HR", "IBI", "tags")
# Unix seconds a session can start at: 2010 to 2100 (milliseconds or garbage are refused).
_START_RANGE = (1_262_304_000.0, 4_102_444_800.0)
_DEVICE = re.compile(r"^\d+_(?P<serial>[A-Za-z0-9]+)$")
REJECTED_COLUMNS = ("file", "line", "reason")


@dataclass(frozen=True)
class Signal:
    """One sampled signal: its start (Unix seconds), rate and samples with their UTC times.

    ``data`` has ``time`` (``datetime64[ns, UTC]``) and the signal's columns; a rejected
    row is not in it, and the rows after it keep their times.
    """

    name: str
    start: float
    rate: float
    data: pd.DataFrame
    slots: int  # sample rows in the file, accepted or not

    @property
    def end(self) -> float:
        """Unix seconds just after the last sample slot (rejected rows included)."""
        return self.start + self.slots / self.rate


@dataclass(frozen=True)
class E4Export:
    """One E4 session of one device, on one clock (UTC)."""

    device: str
    source: str
    signals: dict[str, Signal]
    ibi: pd.DataFrame  # time (UTC), ibi_s
    tags: pd.Series  # UTC times of button presses
    rejected: pd.DataFrame  # file, line, reason
    missing: tuple[str, ...] = field(default=())  # optional files that were not there

    @property
    def start(self) -> float:
        """The earliest start of its signals (Unix seconds)."""
        return min(s.start for s in self.signals.values())

    @property
    def end(self) -> float:
        """Unix seconds just after the last sample of its longest signal."""
        return max(s.end for s in self.signals.values())


class _Files:
    """The CSV texts of an export folder or zip, by file stem."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.texts: dict[str, str] = {}
        if path.is_dir():
            for file in path.iterdir():
                if file.suffix.lower() == ".csv":
                    self.texts[file.stem] = file.read_text(encoding="utf-8-sig")
        elif path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    member = Path(name)
                    if member.suffix.lower() == ".csv" and not name.endswith("/"):
                        text = archive.read(name).decode("utf-8-sig")
                        self.texts[member.stem] = text
        elif path.exists():
            raise AnomalakeError(
                f"{path} is neither a folder nor a zip file",
                "point at an E4 export folder or the zip Empatica's portal gives",
            )
        else:
            raise AnomalakeError(f"{path} does not exist", "check the path")


def device_of(path: Path) -> str:
    """The device of an export named ``<start>_<serial>`` (Empatica's), else its name."""
    stem = path.stem if path.is_file() else path.name
    match = _DEVICE.match(stem)
    return match.group("serial") if match else stem


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnomalakeError(f"{what} is not a number: {text.strip()[:40]!r}", _FIX) from None
    if not math.isfinite(value):
        raise AnomalakeError(f"{what} is not finite: {text.strip()[:40]!r}", _FIX)
    return value


_FIX = "the first two rows of an E4 file are the start (Unix seconds) and the rate (Hz)"


def _header(lines: list[str], stem: str) -> tuple[float, float]:
    """The start and rate of a sampled file (every column must agree)."""
    if len(lines) < 2:
        raise AnomalakeError(f"{stem}.csv has no start and rate rows", _FIX)
    starts = {_number(c, f"{stem}.csv start") for c in lines[0].split(",")}
    rates = {_number(c, f"{stem}.csv sample rate") for c in lines[1].split(",")}
    if len(starts) != 1 or len(rates) != 1:
        raise AnomalakeError(f"{stem}.csv: its columns disagree on the start or the rate", _FIX)
    (start,), (rate,) = starts, rates
    if not _START_RANGE[0] <= start <= _START_RANGE[1]:
        raise AnomalakeError(
            f"{stem}.csv start {start:.0f} is not Unix seconds between 2010 and 2100", _FIX
        )
    if rate <= 0:
        raise AnomalakeError(f"{stem}.csv sample rate must be > 0: {rate}", _FIX)
    return start, rate


def _values(lines: list[str], names: tuple[str, ...], first_line: int) -> pd.DataFrame:
    """Rows of numbers with a ``reason`` (None if the row is a sample), vectorised.

    ``first_line`` is the 1-based line number of ``lines[0]`` in its file.
    """
    fast = _clean_values(lines, names, first_line)
    if fast is not None:
        return fast
    width = len(names)
    raw = pd.Series(lines, dtype=object)
    cells = raw.str.split(",", expand=True) if len(raw) else pd.DataFrame()
    counts = raw.str.count(",") + 1 if len(raw) else pd.Series(dtype=int)
    blank = raw.str.strip() == "" if len(raw) else pd.Series(dtype=bool)
    out = pd.DataFrame(index=raw.index)
    bad_number = pd.Series(False, index=raw.index)
    not_finite = pd.Series(False, index=raw.index)
    for i, name in enumerate(names):
        text = cells[i] if i in cells.columns else pd.Series(None, index=raw.index, dtype=object)
        value = pd.to_numeric(text.str.strip(), errors="coerce")
        is_nan_text = text.str.strip().str.lower().isin(("nan", "inf", "-inf", "+inf"))
        bad_number |= value.isna() & text.notna() & (text.str.strip() != "") & ~is_nan_text
        not_finite |= is_nan_text | (value.notna() & ~np.isfinite(value.astype(float)))
        out[name] = value.astype(float)
    reason = pd.Series(None, index=raw.index, dtype=object)
    reason[not_finite] = "NaN or infinite value"
    reason[bad_number] = "not a number"
    wrong = (counts != width) & ~blank
    reason[wrong] = counts[wrong].map(lambda n: f"expected {width} values, got {n}")
    reason[blank] = "empty row"
    out["reason"] = reason
    out["line"] = np.arange(first_line, first_line + len(raw))
    return out


def _clean_values(lines: list[str], names: tuple[str, ...], first_line: int) -> pd.DataFrame | None:
    """:func:`_values` of a file in which every row is a sample (C parser), else None.

    Any doubt (a row of another width, a cell that is not a number, NaN, infinity, a
    blank row) gives None, and the row-by-row path finds the reasons.
    """
    if not lines:
        return None
    try:
        parsed = pd.read_csv(
            io.StringIO("\n".join(lines)),
            header=None,
            skip_blank_lines=False,
            dtype=float,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if parsed.shape != (len(lines), len(names)) or not np.isfinite(parsed.to_numpy()).all():
        return None
    parsed.columns = list(names)
    parsed["reason"] = pd.Series(None, index=parsed.index, dtype=object)
    parsed["line"] = np.arange(first_line, first_line + len(lines))
    return parsed


def _rejected(frame: pd.DataFrame, stem: str) -> pd.DataFrame:
    bad = frame[frame["reason"].notna()]
    return pd.DataFrame(
        {"file": f"{stem}.csv", "line": bad["line"].to_numpy(), "reason": bad["reason"].to_numpy()}
    )


def _lines(text: str) -> list[str]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():  # a file's final newline(s)
        lines.pop()
    return lines


def _sampled(text: str, stem: str) -> tuple[Signal, pd.DataFrame]:
    names = SAMPLED[stem][0]
    lines = _lines(text)
    start, rate = _header(lines, stem)
    values = _values(lines[2:], names, first_line=3)
    seconds = start + np.arange(len(values)) / rate
    values.insert(0, "time", pd.to_datetime(seconds, unit="s", utc=True))
    kept = values[values["reason"].isna()][["time", *names]].reset_index(drop=True)
    return Signal(stem, start, rate, kept, len(values)), _rejected(values, stem)


def _utc(seconds: np.ndarray) -> pd.DatetimeIndex:
    """UTC times of Unix seconds, to the microsecond (E4 files give six decimals)."""
    micros = np.round(np.asarray(seconds, dtype=float) * 1e6).astype(np.int64)
    return pd.to_datetime(micros, unit="us", utc=True)


def _ibi(text: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    lines = _lines(text)
    if not lines:
        raise AnomalakeError("IBI.csv is empty", "an E4 IBI.csv starts with '<start>, IBI'")
    start = _number(lines[0].split(",")[0], "IBI.csv start")
    values = _values(lines[1:], ("offset_s", "ibi_s"), first_line=2)
    nonpositive = values["reason"].isna() & ((values["ibi_s"] <= 0) | (values["offset_s"] < 0))
    values.loc[nonpositive, "reason"] = "negative time or non-positive interval"
    ok = values[values["reason"].isna()]
    ibi = pd.DataFrame(
        {"time": _utc(start + ok["offset_s"].to_numpy()), "ibi_s": ok["ibi_s"].to_numpy()}
    ).sort_values("time", kind="stable", ignore_index=True)
    return ibi, _rejected(values, "IBI")


def _tags(text: str) -> tuple[pd.Series, pd.DataFrame]:
    values = _values(_lines(text), ("time",), first_line=1)
    ok = values[values["reason"].isna()]
    times = pd.Series(_utc(ok["time"].to_numpy()), name="time").sort_values(ignore_index=True)
    return times, _rejected(values, "tags")


def load_export(path: Path, device: str | None = None) -> E4Export:
    """Read one E4 export (a folder or its zip) onto one UTC clock.

    Raises :class:`AnomalakeError` (one line, naming what is missing) for a folder that is
    not an E4 export, or a sampled file whose start or rate rows are not numbers.
    """
    files = _Files(path)
    absent = [stem for stem in REQUIRED if stem not in files.texts]
    if absent:
        found = ", ".join(sorted(files.texts)) or "no CSV files"
        raise AnomalakeError(
            f"{path} is not an E4 export: no {', '.join(f'{s}.csv' for s in absent)} "
            f"(found {found})",
            "point at the folder or zip of one E4 session (ACC, BVP, EDA, TEMP, ... .csv)",
        )
    signals: dict[str, Signal] = {}
    rejected = [pd.DataFrame(columns=list(REJECTED_COLUMNS))]
    for stem in SAMPLED:
        if stem in files.texts:
            signals[stem], bad = _sampled(files.texts[stem], stem)
            rejected.append(bad)
    ibi = pd.DataFrame({"time": pd.Series(dtype="datetime64[ns, UTC]"), "ibi_s": []})
    if "IBI" in files.texts:
        ibi, bad = _ibi(files.texts["IBI"])
        rejected.append(bad)
    tags = pd.Series(pd.to_datetime([], utc=True), name="time")
    if "tags" in files.texts:
        tags, bad = _tags(files.texts["tags"])
        rejected.append(bad)
    missing = tuple(stem for stem in OPTIONAL if stem not in files.texts)
    every = pd.concat([r for r in rejected if len(r)] or rejected[:1], ignore_index=True)
    return E4Export(
        device=device or device_of(path),
        source=str(path),
        signals=signals,
        ibi=ibi,
        tags=tags,
        rejected=every.astype({"line": "int64"}),
        missing=missing,
    )


def find_exports(root: Path) -> list[Path]:
    """``root`` if it is one export, else every export folder or zip under it, sorted."""
    if root.is_file() or any((root / f"{stem}.csv").exists() for stem in REQUIRED):
        return [root]
    found = sorted(
        p
        for p in root.rglob("*")
        if (p.is_dir() and (p / "ACC.csv").exists()) or (p.suffix == ".zip" and p.is_file())
    )
    if not found:
        raise AnomalakeError(f"no E4 exports under {root}", "point at E4 export folders or zips")
    return found


def _second_lists(signal: Signal) -> dict[int, list[Any]]:
    """A signal's samples per whole UTC second; a rejected sample is None in its slot."""
    names = list(SAMPLED[signal.name][0])
    slots = signal.slots
    index = np.round(
        (signal.data["time"].astype("int64").to_numpy() / 1e9 - signal.start) * signal.rate
    ).astype(np.int64)
    values: list[Any] = [None] * slots
    rows = signal.data[names].to_numpy().tolist()
    for i, row in zip(index.tolist(), rows, strict=True):
        values[i] = row if len(names) > 1 else row[0]
    if not slots:
        return {}
    seconds = np.floor(signal.start + np.arange(slots) / signal.rate).astype(np.int64)
    change = np.flatnonzero(np.diff(seconds)) + 1
    bounds = zip(np.r_[0, change].tolist(), np.r_[change, slots].tolist(), strict=True)
    return {int(seconds[lo]): values[lo:hi] for lo, hi in bounds}


def frames(export: E4Export) -> Iterator[dict[str, Any]]:
    """One frame per second of the session, every signal's samples of that second.

    ``{"device", "time" (Unix second), "acc": [[x, y, z], ...], "bvp": [...], "eda",
    "temp", "hr", "ibi": [[seconds into the second, interval], ...], "tags": [seconds
    into the second, ...]}``; a rejected sample is ``null`` in its place, a signal that
    has no sample in that second is ``[]``.
    """
    per_signal = {name.lower(): _second_lists(s) for name, s in export.signals.items()}
    ibi_at = export.ibi["time"].astype("int64").to_numpy() / 1e9
    ibi_s = export.ibi["ibi_s"].to_numpy()
    tag_at = export.tags.astype("int64").to_numpy() / 1e9
    for second in range(math.floor(export.start), math.ceil(export.end)):
        frame: dict[str, Any] = {"device": export.device, "time": second}
        for name in SAMPLED:
            frame[name.lower()] = per_signal.get(name.lower(), {}).get(second, [])
        lo, hi = np.searchsorted(ibi_at, [second, second + 1])
        frame["ibi"] = [
            [round(float(t) - second, 6), float(v)]
            for t, v in zip(ibi_at[lo:hi], ibi_s[lo:hi], strict=True)
        ]
        lo, hi = np.searchsorted(tag_at, [second, second + 1])
        frame["tags"] = [round(float(t) - second, 6) for t in tag_at[lo:hi]]
        yield frame
