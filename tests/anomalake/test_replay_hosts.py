from __future__ import annotations

import json
from pathlib import Path

from anomalake.generators.hosts import write_host_files
from anomalake.replay import host_messages


def test_host_messages_key_by_host_and_keep_the_row_text(tmp_path: Path) -> None:
    write_host_files(tmp_path / "a", 30, seed=1, activities=("process",))
    write_host_files(tmp_path / "b", 20, seed=2, activities=("process",))
    for sub, host in (("a", "web-1"), ("b", "db-1")):
        (csv_file,) = (tmp_path / sub).glob("*.csv")
        csv_file.rename(tmp_path / f"{host}.csv")
    messages = list(host_messages(tmp_path, "process"))
    assert len(messages) == 50
    assert {k for k, _ in messages} == {"web-1", "db-1"}
    values = [json.loads(v) for _, v in messages]
    assert all(v["v"] == 1 and v["activity"] == "process" for v in values)
    assert all(v["origin"] == "replay" for v in values)  # alerts recorded, no one told
    assert all(v["host"] == k for (k, _), v in zip(messages, values, strict=True))
    ts = [float(v["ts"]) for v in values]
    assert ts == sorted(ts)  # merged by time across hosts
    assert all(isinstance(v["TRUN"], str) for v in values)  # text as in the file
