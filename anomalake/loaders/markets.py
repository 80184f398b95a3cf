"""Read minute-bar export files (``timestamp|date, open, high, low, close, volume``).

Real exports are named ``<SYMBOL>__EQ__NSE__NSE__MINUTE.csv``; the symbol is the part of
the file name before the first ``__``. :func:`read_raw_rows` keeps every row as text, bad
ones included, so that the stream can quarantine them with a reason instead of the loader
dropping them; :func:`load_bars` is the typed view for batch jobs and evaluations.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from anomalake.errors import AnomalakeError

#: The exchange the bars come from keeps its trade dates in this time zone.
EXCHANGE_TIMEZONE = "Asia/Kolkata"

FIELDS = ("timestamp", "open", "high", "low", "close", "volume")
TIME_ALIASES = ("timestamp", "date", "datetime", "time")


def symbol_from_path(path: Path) -> str:
    """``TATACHEM__EQ__NSE__NSE__MINUTE.csv`` -> ``TATACHEM``."""
    return path.name.split("__", 1)[0].removesuffix(".csv")


def market_files(path: Path) -> list[Path]:
    """The export files at ``path`` (a file, or a folder of ``*__MINUTE.csv`` / ``*.csv``)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise AnomalakeError(f"no such file or folder: {path}", "pass a folder of minute-bar CSVs")
    files = sorted(path.glob("*__MINUTE.csv")) or sorted(
        p for p in path.glob("*.csv") if p.name not in ("labels.csv", "faults.csv")
    )
    if not files:
        raise AnomalakeError(
            f"no minute-bar CSV files in {path}",
            "generate some with `anomalake generate markets DIR`",
        )
    return files


def _header_map(header: list[str], path: Path) -> dict[str, int]:
    lowered = [h.strip().lower() for h in header]
    time_col = next((lowered.index(a) for a in TIME_ALIASES if a in lowered), None)
    missing = [f for f in FIELDS[1:] if f not in lowered]
    if time_col is None or missing:
        raise AnomalakeError(
            f"{path.name}: header {header} lacks {missing or ['timestamp']}",
            "expected columns timestamp (or date), open, high, low, close, volume",
        )
    return {"timestamp": time_col, **{f: lowered.index(f) for f in FIELDS[1:]}}


def read_raw_rows(path: Path) -> Iterator[dict[str, str | None]]:
    """Each data row as ``{symbol, timestamp, open, ..., volume}`` text; absent fields None."""
    symbol = symbol_from_path(path)
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        columns = _header_map(header, path)
        for row in reader:
            if not row:
                continue
            record: dict[str, str | None] = {"symbol": symbol}
            for field, idx in columns.items():
                record[field] = row[idx].strip() if idx < len(row) else None
            yield record


def load_bars(path: Path) -> pd.DataFrame:
    """All rows of the files at ``path`` typed (unparsable values become NaN/NaT).

    Columns: ``symbol, row, timestamp`` (UTC), ``open, high, low, close, volume``; ``row`` is
    the row's position in its file, so the file order survives any later sort.
    """
    frames = []
    for file in market_files(path):
        raw = pd.DataFrame(list(read_raw_rows(file)), columns=["symbol", *FIELDS])
        raw.insert(1, "row", range(len(raw)))
        frames.append(raw)
    bars = pd.concat(frames, ignore_index=True)
    bars["timestamp"] = pd.to_datetime(
        bars["timestamp"], errors="coerce", utc=True, format="ISO8601"
    )
    for col in FIELDS[1:]:
        bars[col] = pd.to_numeric(bars[col], errors="coerce")
    return bars
