"""`anomalake batch run` runs a DAG for one date without a scheduler."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from anomalake.settings import Settings
from anomalake.stack import VENV_BIN

pytestmark = pytest.mark.integration


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["ANOMALAKE_HOME"] = str(home)
    return env


def test_batch_run_executes_the_dag_for_the_date(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    s = Settings(profile="local", home=tmp_path)
    bars = [
        ("ABC", "2026-04-08 09:15:00+05:30", 10.0, 10.5, 9.5, 10.2, 100),
        ("ABC", "2026-04-08 09:16:00+05:30", 10.2, 10.6, 10.1, 10.4, 300),
    ]
    cols = (
        "symbol string, ts string, open double, high double, low double, close double, volume long"
    )
    (
        spark.createDataFrame(bars, cols)
        .withColumn("event_time", F.to_timestamp("ts"))
        .drop("ts")
        .write.format("delta")
        .save(s.table_path(s.markets.bronze_table))
    )
    cli = [str(VENV_BIN / "anomalake"), "batch", "run"]
    done = subprocess.run(
        [*cli, "--date", "2026-04-08", "--dag", "markets_daily"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "markets_daily 2026-04-08: success" in done.stdout
    (row,) = spark.read.format("delta").load(s.table_path("gold_markets_daily")).collect()
    assert (row["symbol"], row["bars"], row["volume"]) == ("ABC", 2, 400)

    wrong = subprocess.run(
        [*cli, "--date", "2026-04-08", "--dag", "nope"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert wrong.returncode == 1
    assert "no DAG 'nope'" in wrong.stderr and "markets_batch" in wrong.stderr
