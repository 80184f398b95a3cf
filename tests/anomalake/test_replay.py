from __future__ import annotations

import json
from pathlib import Path

from anomalake.replay import interleave, paced, to_message


def _write(path: Path, stamps: list[str]) -> None:
    path.write_text(
        "timestamp,open,high,low,close,volume\n" + "".join(f"{s},1,1,1,1,1\n" for s in stamps)
    )


def test_interleave_merges_by_time_and_keeps_each_file_order(tmp_path: Path) -> None:
    _write(
        tmp_path / "A.csv",
        ["2026-01-05 09:15:00+05:30", "2026-01-05 09:17:00+05:30", "2026-01-05 09:16:00+05:30"],
    )
    _write(
        tmp_path / "B.csv",
        [
            "2026-01-05 09:15:00+05:30",
            "2026-01-05 09:16:00+05:30",
            "bad",
            "2026-01-05 09:18:00+05:30",
        ],
    )
    rows = [
        (r["symbol"], r["timestamp"][14:16] if r["timestamp"] != "bad" else "bad")
        for r in interleave([tmp_path / "A.csv", tmp_path / "B.csv"])
    ]
    assert [t for s, t in rows if s == "A"] == ["15", "17", "16"]  # file order kept
    assert [t for s, t in rows if s == "B"] == ["15", "16", "bad", "18"]
    assert rows.index(("B", "16")) < rows.index(("A", "17"))  # merged by time


def test_messages_carry_the_schema_version_numbers_and_raw_text() -> None:
    key, value = to_message(
        {
            "symbol": "A",
            "timestamp": "t",
            "open": "1.50",
            "high": "2",
            "low": "n/a",
            "close": "NaN",
            "volume": None,
        }
    )
    assert key == "A"
    assert json.loads(value) == {
        "v": 1,
        "symbol": "A",
        "timestamp": "t",
        "open": 1.5,
        "high": 2,
        "low": "n/a",
        "close": "NaN",
    }


def test_paced_holds_rows_to_the_requested_speed() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    rows = [{"timestamp": f"2026-01-05 09:{15 + i}:00+05:30"} for i in range(3)]
    out = list(paced(iter(rows), speed=60.0, clock=lambda: now[0], sleep=sleep))
    assert out == rows
    assert slept == [1.0, 1.0]  # one event minute per wall second at 60x
    assert list(paced(iter(rows), speed=0)) == rows
