"""Replay export files to Kafka in event-time order, as fast as possible or N x real time.

Files are interleaved by their running event time while each file's own row order is
kept, so disorder, duplicates and bad rows inside a file reach the stream exactly as the
file has them. Each record is keyed by symbol; its JSON value carries the schema version
``v``; numbers that parse are sent as JSON numbers, anything else as the original text.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from anomalake.loaders.markets import market_files, read_raw_rows
from anomalake.producer import SCHEMA_VERSION

RawRow = dict[str, str | None]
R = TypeVar("R")


def _event_seconds(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def interleave(
    files: list[Path], read_rows: Callable[[Path], Iterator[RawRow]] = read_raw_rows
) -> Iterator[RawRow]:
    """Rows of all files (read by ``read_rows``) merged by each file's running max event time."""

    def keyed(index: int, path: Path) -> Iterator[tuple[float, int, int, RawRow]]:
        running = -math.inf
        for seq, row in enumerate(read_rows(path)):
            seconds = _event_seconds(row.get("timestamp"))
            if seconds is not None:
                running = max(running, seconds)
            yield running, index, seq, row

    for _, _, _, row in heapq.merge(*(keyed(i, p) for i, p in enumerate(files))):
        yield row


def _json_value(text: str | None) -> object:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return int(number) if number.is_integer() and "." not in text else number


def to_message(row: RawRow) -> tuple[str, bytes]:
    """``(key, value)`` of one raw row; absent fields are left out of the JSON."""
    value: dict[str, object] = {"v": SCHEMA_VERSION, "symbol": row["symbol"]}
    for field, text in row.items():
        if field != "symbol" and text is not None:
            value[field] = text if field == "timestamp" else _json_value(text)
    return str(row["symbol"]), json.dumps(value, separators=(",", ":")).encode()


def _row_seconds(row: Any) -> float | None:
    return _event_seconds(row.get("timestamp"))


def paced(
    rows: Iterator[R],
    speed: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    seconds_of: Callable[[R], float | None] = _row_seconds,
) -> Iterator[R]:
    """Hold rows back so event time advances ``speed`` x faster than wall time (0: no pacing).

    ``seconds_of``: a row's event time in Unix seconds (None: sent without waiting); a
    raw row's ``timestamp`` by default.
    """
    if speed <= 0:
        yield from rows
        return
    origin_event: float | None = None
    origin_wall = clock()
    for row in rows:
        seconds = seconds_of(row)
        if seconds is not None:
            if origin_event is None:
                origin_event = seconds
            due = origin_wall + (seconds - origin_event) / speed
            delay = due - clock()
            if delay > 0:
                sleep(delay)
        yield row


def replay_messages(path: Path, speed: float = 0.0) -> Iterator[tuple[str, bytes]]:
    """Kafka messages of every file at ``path``, paced by ``speed``."""
    return (to_message(row) for row in paced(interleave(market_files(path)), speed))


def host_messages(
    path: Path, activity: str, speed: float = 0.0, origin: str = "replay"
) -> Iterator[tuple[str, bytes]]:
    """Kafka messages of the ToN-IoT ``activity`` CSVs at ``path``, one host per file.

    The host is the file's stem; values are the row's original text (the stream parses them
    with the loader's own function), plus the schema version ``v``, ``host``, ``activity``
    and ``origin`` (``replay``: the stream records its alerts but tells no one; ``live``).
    Rows are merged across files by ``ts`` (each file's own order kept) and paced by ``speed``.
    """
    import csv

    from anomalake.loaders.toniot import toniot_files

    files = [path] if path.is_file() else toniot_files(path, activity)

    def rows(file: Path) -> Iterator[tuple[float, RawRow]]:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            for row in csv.DictReader(fh):
                row = {k.strip(): v for k, v in row.items() if k is not None}
                row["host"] = file.stem
                try:
                    seconds = float(row.get("ts") or "nan")
                except ValueError:
                    seconds = math.nan
                yield (seconds if math.isfinite(seconds) else -math.inf), row

    merged = (row for _, row in heapq.merge(*(rows(f) for f in files), key=lambda p: p[0]))
    timed = (
        {**row, "timestamp": datetime.fromtimestamp(float(row["ts"] or "nan")).isoformat()}
        if _finite(row.get("ts"))
        else row
        for row in merged
    )
    for row in paced(timed, speed):
        row.pop("timestamp", None)
        value = {"v": SCHEMA_VERSION, "activity": activity, "origin": origin, **row}
        yield str(row["host"]), json.dumps(value, separators=(",", ":")).encode()


def _finite(text: str | None) -> bool:
    try:
        return text is not None and math.isfinite(float(text))
    except ValueError:
        return False


def infra_messages(
    path: Path, origin: str = "replay", speed: float = 0.0
) -> Iterator[tuple[str, bytes]]:
    """Kafka messages of the SKAB-format files at ``path``, one asset per file, keyed by asset.

    Values carry the schema version, the asset (the file's path under ``path``), the row's
    time, each sensor as a JSON number when it parses (its text otherwise) and ``origin``:
    ``replay`` for history (its anomalies are never sent to people) or ``live``.
    """
    from anomalake.loaders.skab import asset_from_path, skab_files
    from anomalake.loaders.skab import read_raw_rows as read_skab_rows

    root = path if path.is_dir() else path.parent
    files = skab_files(path)

    def rows(file: Path) -> Iterator[RawRow]:
        asset = asset_from_path(file, root)
        for row in read_skab_rows(file):
            yield {"asset": asset, **row}

    for row in paced(interleave(files, rows), speed):
        value: dict[str, object] = {"v": SCHEMA_VERSION, "asset": row["asset"], "origin": origin}
        for name, text in row.items():
            if name != "asset" and text is not None:
                value[name] = text if name == "timestamp" else _json_value(text)
        yield str(row["asset"]), json.dumps(value, separators=(",", ":")).encode()


# The use cases' replay entry points (``entry_points.messages`` in their specs): one
# signature, so that ``anomalake replay <use case>`` is one command for all of them.


def markets_replay(
    path: Path, speed: float, origin: str, stream: str | None
) -> Iterator[tuple[str, bytes]]:
    """Minute-bar exports as Kafka messages; a bar carries no origin (it has no lifecycle)."""
    del origin, stream
    return replay_messages(path, speed)


def infra_replay(
    path: Path, speed: float, origin: str, stream: str | None
) -> Iterator[tuple[str, bytes]]:
    """SKAB-format runs as Kafka messages (:func:`infra_messages`)."""
    del stream
    return infra_messages(path, origin, speed)


def hosts_replay(
    path: Path, speed: float, origin: str, stream: str | None
) -> Iterator[tuple[str, bytes]]:
    """ToN-IoT files of the activity ``stream`` as Kafka messages (:func:`host_messages`)."""
    if stream is None:
        raise ValueError("hosts replays one activity at a time: name it with --stream")
    return host_messages(path, stream, speed, origin)


def wearables_messages(
    path: Path, origin: str = "replay", speed: float = 0.0
) -> Iterator[tuple[str, bytes]]:
    """One message per device and second of the E4 exports at ``path``, keyed by device.

    A frame (:func:`anomalake.loaders.e4.frames`) plus the schema version and ``origin``;
    devices are interleaved by second (each export's own order kept) and paced by
    ``speed``. Why a frame and not a message per sample: ``docs/wearables.md``.
    """
    from anomalake.loaders.e4 import find_exports, frames, load_export

    exports = find_exports(path)
    if not exports:
        raise ValueError(f"no E4 export (a folder or zip with ACC, BVP, EDA, TEMP) in {path}")
    merged = heapq.merge(
        *(frames(load_export(e)) for e in exports), key=lambda f: (f["time"], f["device"])
    )
    for frame in paced(merged, speed, seconds_of=lambda f: float(f["time"])):
        value = {"v": SCHEMA_VERSION, "origin": origin, **frame}
        yield str(frame["device"]), json.dumps(value, separators=(",", ":")).encode()


def wearables_replay(
    path: Path, speed: float, origin: str, stream: str | None
) -> Iterator[tuple[str, bytes]]:
    """E4 exports as Kafka messages (:func:`wearables_messages`)."""
    del stream
    return wearables_messages(path, origin, speed)
