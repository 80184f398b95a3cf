"""`anomalake batch run` runs a DAG for one date without a scheduler."""

from __future__ import annotations

import os
import subprocess
from datetime import date
from pathlib import Path

import pytest

from anomalake.settings import Settings
from anomalake.stack import VENV_BIN

pytestmark = pytest.mark.integration


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["ANOMALAKE_HOME"] = str(home)
    return env


def test_batch_load_then_run_builds_the_day(spark, mlflow_server: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from anomalake.generators.markets import FaultRates, write_market_files

    s = Settings(profile="local", home=tmp_path / "home")
    data = tmp_path / "exports"
    write_market_files(data, 2, date(2026, 4, 8), 1, seed=3, faults=FaultRates(0.01, 0.0, 0.0, 0.0))
    cli = [str(VENV_BIN / "anomalake"), "batch"]
    run = lambda *args: subprocess.run(  # noqa: E731
        [*cli, *args], env=_env(s.home), capture_output=True, text=True, timeout=900
    )
    loaded = run("load", str(data))
    assert loaded.returncode == 0, loaded.stdout[-2000:] + loaded.stderr[-2000:]
    bars = spark.read.format("delta").load(s.table_path(s.markets.bronze_table)).count()
    bad = spark.read.format("delta").load(s.table_path(s.markets.quarantine_table)).count()
    assert bars > 700 and bad > 0
    assert f"{bars} bars in bronze_markets, {bad} rows in quarantine_markets" in loaded.stdout
    assert run("load", str(data)).returncode == 0  # loading again changes nothing
    assert spark.read.format("delta").load(s.table_path(s.markets.bronze_table)).count() == bars

    done = run("run", "--date", "2026-04-08")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "markets_batch 2026-04-08: success" in done.stdout
    gold = spark.read.format("delta").load(s.table_path(s.markets.gold_daily_table)).collect()
    assert sorted(r["symbol"] for r in gold) == ["SYM000", "SYM001"]
    assert sum(r["bars"] for r in gold) == bars  # no duplicates were planted

    wrong = run("run", "--date", "2026-04-08", "--dag", "nope")
    assert wrong.returncode == 1
    assert "no DAG 'nope'" in wrong.stderr and "markets_batch" in wrong.stderr
    missing = run("load", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "no such file or folder" in missing.stderr
