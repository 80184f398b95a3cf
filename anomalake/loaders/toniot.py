"""Read ToN-IoT Linux host-activity CSVs (atop samples of processes, labelled).

Three layouts, told apart by their header (a UTF-8 byte-order mark is tolerated):

* memory: ``ts,PID,MINFLT,MAJFLT,VSTEXT,VSIZE,RSIZE,VGROW,RGROW,MEM,CMD,<label>,type``
* process: ``ts,PID,TRUN,TSLPI,TSLPU,POLI,NICE,PRI,RTPR,CPUNR,Status,EXC,State,CPU,CMD,
  <label>,type``
* disk: ``ts,PID,RDDSK,WRDSK,WCANCL,DSK,CMD,<label>,type``

``<label>`` is ``label`` in some releases and ``attack`` in others; both become ``label``
(0 normal, 1 attack). ``type`` names the attack (``normal``, ``ddos``, ``password``, ...) and is
optional. ``ts`` is Unix seconds and becomes a UTC timestamp; metric columns become floats
(an atop unit suffix ``K``/``M``/``G``/``T`` multiplies by powers of 1024; text that is not a
number becomes NaN); ``CMD``, ``POLI``, ``Status`` and ``State`` stay text.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from anomalake.errors import AnomalakeError
from anomalake.usecases.spec import RecordLimits

KEYS: tuple[str, ...] = ("ts", "PID")
LABEL_ALIASES: tuple[str, ...] = ("label", "attack")
LAYOUTS: dict[str, tuple[str, ...]] = {
    "memory": ("MINFLT", "MAJFLT", "VSTEXT", "VSIZE", "RSIZE", "VGROW", "RGROW", "MEM", "CMD"),
    "process": (
        "TRUN",
        "TSLPI",
        "TSLPU",
        "POLI",
        "NICE",
        "PRI",
        "RTPR",
        "CPUNR",
        "Status",
        "EXC",
        "State",
        "CPU",
        "CMD",
    ),
    "disk": ("RDDSK", "WRDSK", "WCANCL", "DSK", "CMD"),
}
TEXT_COLUMNS: frozenset[str] = frozenset({"CMD", "POLI", "Status", "State"})
ACTIVITIES: tuple[str, ...] = tuple(LAYOUTS)

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([KMGT]?)\s*$")
_SCALE = {"": 1.0, "K": 1024.0, "M": 1024.0**2, "G": 1024.0**3, "T": 1024.0**4}


def metric_columns(activity: str) -> tuple[str, ...]:
    """The activity's columns between ``PID`` and the label, in file order."""
    if activity not in LAYOUTS:
        raise AnomalakeError(
            f"unknown ToN-IoT Linux activity {activity!r}", f"use one of {', '.join(ACTIVITIES)}"
        )
    return LAYOUTS[activity]


def numeric_columns(activity: str) -> tuple[str, ...]:
    """The activity's numeric metric columns."""
    return tuple(c for c in metric_columns(activity) if c not in TEXT_COLUMNS)


def text_columns(activity: str) -> tuple[str, ...]:
    """The activity's text columns (process name, scheduling policy, states)."""
    return tuple(c for c in metric_columns(activity) if c in TEXT_COLUMNS)


def detect_activity(header: list[str], name: str = "header") -> str:
    """The layout whose columns ``header`` has, or a clear error naming what is missing.

    Args:
        header: the CSV header fields (whitespace and a byte-order mark are ignored).
        name: how to name the source in the error (usually the file name).
    """
    present = {h.strip().lstrip("\ufeff").lower() for h in header}
    has_keys = all(k.lower() in present for k in KEYS)
    has_label = any(a in present for a in LABEL_ALIASES)
    for activity, columns in LAYOUTS.items():
        if has_keys and has_label and all(c.lower() in present for c in columns):
            return activity
    raise AnomalakeError(
        f"{name}: columns {header} match no ToN-IoT Linux layout",
        "expected ts, PID, the memory/process/disk columns, label (or attack) and type",
    )


def parse_metric(values: pd.Series) -> pd.Series:
    """Atop metric text as floats: ``'2.6G'`` -> 2.6 * 1024**3; not a number -> NaN."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    parts = values.astype("string").str.extract(_NUMBER)
    scale = parts[1].map(_SCALE).astype(float)
    return pd.to_numeric(parts[0], errors="coerce").astype(float) * scale


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return next(csv.reader(fh), [])


def type_rows(
    raw: pd.DataFrame, activity: str, limits: RecordLimits | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Text rows of ``activity``'s layout -> typed columns, and why each row is invalid.

    The one place ToN-IoT values are parsed: file loads (which stop at the first invalid
    row) and the streaming job (which quarantines invalid rows) both call it. ``raw`` has
    the canonical column names; a missing or empty ``label`` is allowed (live events are
    unlabelled) and gives ``<NA>``.

    Returns:
        The typed frame (as :func:`load_toniot` describes) and a Series of reasons, None
        for a valid row: ``missing field X``, ``ts 'x' is not Unix seconds``, ``label 'x'
        is not 0 or 1``.
    """
    problems: list[pd.Series] = []
    out = pd.DataFrame(index=raw.index)
    for col in (*KEYS, *LAYOUTS[activity]):
        if col not in raw.columns:
            raw = raw.assign(**{col: None})
        problems.append(raw[col].isna().map({True: f"missing field {col}", False: None}))
    text_ts = raw["ts"].astype("string").str.strip()
    ts = pd.to_numeric(text_ts, errors="coerce").astype("float64")
    earliest, latest = (limits or RecordLimits()).event_time_bounds()
    in_range = ts.between(earliest, latest)
    problems.append(
        pd.Series(
            [
                None
                if ok or t is pd.NA
                else (
                    f"ts {t[:40]!r} is not Unix seconds"
                    if pd.isna(number)
                    else f"ts {t[:40]!r} is out of range (milliseconds where seconds are meant?)"
                )
                for ok, t, number in zip(in_range, text_ts, ts, strict=True)
            ],
            index=raw.index,
            dtype=object,
        )
    )
    out["ts"] = pd.to_datetime(ts.where(in_range), unit="s", utc=True)
    pid = pd.to_numeric(raw["PID"], errors="coerce").astype("float64")
    pid_ok = pid.abs().lt(2**53) & pid.mod(1).eq(0)
    problems.append(
        pd.Series(
            [
                f"PID {str(t)[:40]!r} is not a process id" if bad else None
                for bad, t in zip(raw["PID"].notna() & ~pid_ok, raw["PID"], strict=True)
            ],
            index=raw.index,
            dtype=object,
        )
    )
    out["PID"] = pid.where(pid_ok).astype("Int64")
    for col in LAYOUTS[activity]:
        if col in TEXT_COLUMNS:
            out[col] = raw[col].astype("string").str.strip().astype(object)
        else:
            out[col] = parse_metric(raw[col].astype("string").fillna(""))
    label_col = next((c for c in raw.columns if c.lower() in LABEL_ALIASES), None)
    text_label = (
        raw[label_col].astype("string").str.strip()
        if label_col
        else pd.Series(pd.NA, index=raw.index, dtype="string")
    )
    label = pd.to_numeric(text_label, errors="coerce")
    bad_label = text_label.notna() & (text_label != "") & ~label.isin([0, 1])
    problems.append(
        pd.Series(
            [
                f"label {t!r} is not 0 or 1" if bad else None
                for bad, t in zip(bad_label, text_label, strict=True)
            ],
            index=raw.index,
            dtype=object,
        )
    )
    out["label"] = label.where(label.isin([0, 1])).astype("Int8")
    out["type"] = (
        raw["type"].astype("string").str.strip().str.lower().astype(object)
        if "type" in raw.columns
        else pd.NA
    )
    out.attrs["activity"] = activity
    reasons = pd.concat(problems, axis=1).apply(
        lambda row: "; ".join(r for r in row if r) or None, axis=1
    )
    return out, reasons.reindex(raw.index)


def _load_file(path: Path, activity: str | None) -> pd.DataFrame:
    found = detect_activity(_header(path), path.name)
    if activity is not None and found != activity:
        raise AnomalakeError(
            f"{path.name} has the {found} layout, not {activity}", f"pass a {activity} file"
        )
    raw = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    canonical = {c.lower(): c for c in (*KEYS, *LAYOUTS[found], "label", "type")}
    raw.columns = [canonical.get(c.strip().lower(), c.strip()) for c in raw.columns]
    out, reasons = type_rows(raw, found)
    invalid = reasons.notna().to_numpy().nonzero()[0]
    if len(invalid):
        row = int(invalid[0])
        raise AnomalakeError(
            f"{path.name}: {reasons.iloc[row]} in data row {row + 1}",
            "the ts column must hold Unix seconds and the label (attack) column 0/1",
        )
    if out["label"].isna().any():
        raise AnomalakeError(
            f"{path.name}: no label in data row {int(out['label'].isna().argmax()) + 1}",
            "the label (attack) column must be 0/1",
        )
    out["label"] = out["label"].astype("int8")
    return out


def toniot_files(folder: Path, activity: str) -> list[Path]:
    """The CSV files in ``folder`` whose header has the ``activity`` layout, sorted by name."""
    metric_columns(activity)
    files = []
    for path in sorted(folder.glob("*.csv")):
        try:
            if detect_activity(_header(path), path.name) == activity:
                files.append(path)
        except AnomalakeError:
            continue
    if not files:
        raise AnomalakeError(
            f"no ToN-IoT Linux {activity} CSV files in {folder}",
            f"generate some with anomalake.generators.hosts.write_host_files({folder}, ...)",
        )
    return files


def load_toniot(path: Path, activity: str | None = None) -> pd.DataFrame:
    """The typed rows of a ToN-IoT Linux CSV, or of every ``activity`` CSV in a folder.

    Columns: ``ts`` (UTC), ``PID`` (``Int64``), the activity's metric columns (floats, with
    ``CMD``/``POLI``/``Status``/``State`` as text), ``label`` (``int8``, 1 = attack) and
    ``type``. ``frame.attrs['activity']`` names the layout.

    Args:
        path: a CSV file, or a folder (then ``activity`` is required).
        activity: ``memory``, ``process`` or ``disk``; checked against the file when given.

    Raises:
        AnomalakeError: missing path, unknown layout, a layout other than ``activity``,
            a ``ts`` that is not Unix seconds or a label that is not 0/1.
    """
    if path.is_dir():
        if activity is None:
            raise AnomalakeError(
                f"{path} is a folder and no activity was named",
                f"name one of {', '.join(ACTIVITIES)}",
            )
        frames = [_load_file(p, activity) for p in toniot_files(path, activity)]
        out = pd.concat(frames, ignore_index=True)
        out.attrs["activity"] = activity
        return out
    if not path.is_file():
        raise AnomalakeError(
            f"no ToN-IoT file or folder at {path}", "pass a ToN-IoT Linux CSV or its folder"
        )
    return _load_file(path, activity)
