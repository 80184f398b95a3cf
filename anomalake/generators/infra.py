"""Synthetic multivariate sensor runs of pumping assets, in SKAB's file format, with faults.

Each asset reads SKAB's eight sensors once a second. A slow latent *load* (an AR(1)
process plus a duty cycle) drives current, flow, pressure and vibration together, the
temperatures follow it with a lag, and every sensor has its own noise — so the sensors are
correlated the way a real rig's are, and a fault that breaks the correlation is visible to
a multivariate detector before any single sensor leaves its range.

Labelled faults (``anomaly = 1`` for their duration, ``changepoint = 1`` at their start;
every one is also a row of ``labels.csv``):

* ``spike``: a few seconds of a large excursion on one sensor;
* ``pressure_drop``: a valve closes — pressure and flow fall for one to five minutes;
* ``overheating``: temperature drifts up by several degrees over minutes, then recovers;
* ``vibration``: bearing wear — accelerometer noise five times larger;
* ``stuck``: one sensor repeats its last value for two minutes.

With ``bad_rows`` the files also get the record faults real exports have (a value that is
not a number, an empty value, an unparsable time, a repeated and an out-of-order time),
listed in ``faults.csv``; those rows are not readings and carry no label.
Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from anomalake.settings import SKAB_SENSORS

FAULT_KINDS = ("spike", "pressure_drop", "overheating", "vibration", "stuck")
DEFAULT_START = datetime(2026, 3, 9, 10, 0, 0)
_BASE = {
    "Accelerometer1RMS": (0.026, 0.002, 0.0006),
    "Accelerometer2RMS": (0.040, 0.002, 0.0006),
    "Current": (1.3, 0.5, 0.05),
    "Pressure": (0.3, 0.12, 0.04),
    "Temperature": (79.0, 1.0, 0.08),
    "Thermocouple": (26.0, 0.3, 0.05),
    "Voltage": (230.0, 0.0, 2.5),
    "Volume Flow RateRMS": (32.0, 2.0, 0.4),
}


def asset_names(n: int) -> list[str]:
    """``pump01``, ``pump02``, ..."""
    return [f"pump{i + 1:02d}" for i in range(n)]


def _rng(seed: int, asset: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(asset.encode())])


def generate_readings(
    asset: str, start: datetime, seconds: int, seed: int = 0, faults_per_hour: float = 3.0
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """One asset's readings (SKAB columns, labels included) and its fault episodes."""
    rng = _rng(seed, asset)
    n = seconds
    load = np.zeros(n)
    for i in range(1, n):
        load[i] = 0.995 * load[i - 1] + rng.normal(0, 0.05)
    load += 0.5 * np.sin(2 * np.pi * np.arange(n) / 1800.0)
    lagged = pd.Series(load).ewm(alpha=0.01).mean().to_numpy()
    data = {}
    for name, (level, gain, noise) in _BASE.items():
        driver = lagged if name in ("Temperature", "Thermocouple") else load
        data[name] = level + gain * driver + rng.normal(0, noise, n)
    anomaly = np.zeros(n, dtype=int)
    changepoint = np.zeros(n, dtype=int)
    episodes: list[dict[str, object]] = []
    count = rng.poisson(faults_per_hour * seconds / 3600)
    warm = min(600, n // 4)  # the first minutes are normal: detectors learn there
    for _ in range(count):
        kind = str(rng.choice(FAULT_KINDS))
        length = {
            "spike": int(rng.integers(3, 10)),
            "pressure_drop": int(rng.integers(60, 300)),
            "overheating": int(rng.integers(240, 600)),
            "vibration": int(rng.integers(60, 240)),
            "stuck": 120,
        }[kind]
        if n - length - warm <= 0:
            continue
        begin = int(rng.integers(warm, n - length))
        if anomaly[max(begin - 120, 0) : begin + length + 120].any():
            continue  # keep episodes apart so each is one event
        span = slice(begin, begin + length)
        sensor = ""
        if kind == "spike":
            sensor = str(rng.choice(["Current", "Pressure", "Volume Flow RateRMS"]))
            level, gain, noise = _BASE[sensor]
            data[sensor][span] += rng.choice([-1, 1]) * (8 * noise + 2 * gain)
        elif kind == "pressure_drop":
            sensor = "Pressure"
            data["Pressure"][span] -= 0.25
            data["Volume Flow RateRMS"][span] -= 4.0
        elif kind == "overheating":
            sensor = "Temperature"
            ramp = np.minimum(np.arange(length) / (length / 2), 1.0) * 4.0
            data["Temperature"][span] += ramp
            data["Thermocouple"][span] += ramp / 3
        elif kind == "vibration":
            sensor = "Accelerometer1RMS"
            for acc in ("Accelerometer1RMS", "Accelerometer2RMS"):
                data[acc][span] += rng.normal(0, 5 * _BASE[acc][2], length)
        else:
            sensor = str(rng.choice(list(SKAB_SENSORS)))
            data[sensor][span] = data[sensor][begin - 1]
        anomaly[span] = 1
        changepoint[begin] = 1
        times = pd.Timestamp(start) + pd.to_timedelta([begin, begin + length - 1], unit="s")
        episodes.append(
            {"asset": asset, "kind": kind, "sensor": sensor, "start": times[0], "end": times[1]}
        )
    frame = pd.DataFrame({name: np.round(data[name], 6) for name in SKAB_SENSORS})
    frame.insert(0, "datetime", pd.Timestamp(start) + pd.to_timedelta(np.arange(n), unit="s"))
    frame["anomaly"] = anomaly.astype(float)
    frame["changepoint"] = changepoint.astype(float)
    return frame, sorted(episodes, key=lambda e: str(e["start"]))


def _text_rows(frame: pd.DataFrame) -> list[list[str]]:
    rows = []
    for rec in frame.itertuples(index=False):
        stamp = pd.Timestamp(rec[0]).strftime("%Y-%m-%d %H:%M:%S")
        rows.append([stamp, *(repr(float(v)) for v in rec[1:])])
    return rows


def _bad_rows(
    rows: list[list[str]], rng: np.random.Generator, asset: str
) -> tuple[list[list[str]], list[dict[str, object]]]:
    """Rows with record faults inserted; each logged with its line and kind."""
    sensor_cols = range(1, 1 + len(SKAB_SENSORS))
    out = [list(r) for r in rows]
    log: list[dict[str, object]] = []
    positions = sorted(
        rng.choice(np.arange(20, len(rows) - 2), size=5, replace=False), reverse=True
    )
    for kind, pos in zip(
        ("not_a_number", "empty_value", "bad_time", "repeated_time", "out_of_order"),
        positions,
        strict=True,
    ):
        bad = list(rows[pos])
        bad[-2:] = ["0", "0"]  # a record fault is not a labelled reading
        if kind == "not_a_number":
            bad[int(rng.choice(list(sensor_cols)))] = "n/a"
        elif kind == "empty_value":
            bad[int(rng.choice(list(sensor_cols)))] = ""
        elif kind == "bad_time":
            bad[0] = "2026-13-45 99:00:00"
        elif kind == "out_of_order":
            bad = list(rows[pos - 10])
            bad[-2:] = ["0", "0"]
        out.insert(pos + 1, bad)
        log.append({"asset": asset, "kind": kind, "after_row": pos})
    return out, log


def write_infra_files(
    out_dir: Path,
    assets: int = 3,
    hours: float = 1.0,
    seed: int = 0,
    bad_rows: bool = False,
    start: datetime = DEFAULT_START,
    faults_per_hour: float = 3.0,
) -> dict[str, int]:
    """Write ``<asset>.csv`` per asset, ``labels.csv`` and (with ``bad_rows``) ``faults.csv``.

    Returns counts: ``files``, ``rows`` (lines written, bad ones included), ``episodes``,
    ``bad_rows``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    header = ["datetime", *SKAB_SENSORS, "anomaly", "changepoint"]
    labels: list[dict[str, object]] = []
    faults: list[dict[str, object]] = []
    rows_written = 0
    for asset in asset_names(assets):
        frame, episodes = generate_readings(
            asset, start, int(hours * 3600), seed, faults_per_hour=faults_per_hour
        )
        labels += episodes
        rows = _text_rows(frame)
        if bad_rows:
            rows, log = _bad_rows(rows, _rng(seed + 1, asset), asset)
            faults += log
        with open(out_dir / f"{asset}.csv", "w") as fh:
            fh.write(";".join(header) + "\n")
            fh.writelines(";".join(r) + "\n" for r in rows)
        rows_written += len(rows)
    pd.DataFrame(labels, columns=["asset", "kind", "sensor", "start", "end"]).to_csv(
        out_dir / "labels.csv", index=False
    )
    if bad_rows:
        pd.DataFrame(faults, columns=["asset", "kind", "after_row"]).to_csv(
            out_dir / "faults.csv", index=False
        )
    return {"files": assets, "rows": rows_written, "episodes": len(labels), "bad_rows": len(faults)}


def generate(out: Path, entities: int, hours: float, seed: int, faults: bool) -> str:
    """The use case's generator (``anomalake generate infra``): one SKAB-format run per asset.

    ``faults`` adds malformed and out-of-order rows (``faults.csv``) to the labelled ones.
    """
    counts = write_infra_files(out, assets=entities, hours=hours, seed=seed, bad_rows=faults)
    return (
        f"wrote {counts['files']} files ({counts['rows']} rows, {counts['episodes']} labelled "
        f"faults, {counts['bad_rows']} bad rows) and labels.csv to {out}"
    )
