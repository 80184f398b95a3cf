"""DAG integrity: every DAG imports, is tagged, retries, and parses without heavy imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from anomalake.settings import Settings


@pytest.fixture(scope="module")
def dagbag(airflow_db: Settings):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(airflow_db.dags_folder))


@pytest.mark.integration
def test_dags_import_without_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert "markets_batch" in dagbag.dags


@pytest.mark.integration
def test_every_dag_is_tagged_documented_and_retries(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
            assert task.execution_timeout is not None, f"{dag_id}.{task.task_id} has no timeout"


def test_dag_files_do_not_import_spark_or_ml_at_parse_time(settings: Settings) -> None:
    files = sorted(str(p) for p in settings.dags_folder.glob("*.py"))
    code = (
        "import runpy, sys\n"
        f"for f in {files!r}: runpy.run_path(f)\n"
        "heavy = ('pyspark', 'mlflow', 'sklearn', 'great_expectations', 'spark.session')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


DAY1, DAY2, DAY3 = date(2026, 4, 6), date(2026, 4, 7), date(2026, 4, 8)
DAY_TABLES = (
    "silver_markets",
    "gaps_markets",
    "gold_markets_daily",
    "gold_markets_stats",
    "gold_markets_histograms",
    "gold_markets_rolling",
    "batch_anomalies_markets",
    "reconciliation_markets",
)


def _run(dag, day: date):  # type: ignore[no-untyped-def]
    run = dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC))
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


def _snapshot(spark, settings: Settings, day: date) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def, type-arg]
    from pyspark.sql import functions as F

    out = {}
    for table in DAY_TABLES:
        rows = spark.read.format("delta").load(settings.table_path(table))
        out[table] = sorted(map(tuple, rows.where(F.col("trade_date") == day).collect()))
    daily = spark.read.format("delta").load(settings.table_path("batch_anomalies_markets_daily"))
    out["atypical"] = sorted(
        map(tuple, daily.where(F.col("trade_date") == day).drop("mlflow_run_id").collect())
    )
    return out


@pytest.mark.integration
def test_markets_batch_dag_builds_every_table_idempotently_and_stops_on_bad_data(  # type: ignore[no-untyped-def]
    dagbag, spark, settings: Settings, mlflow_server: str, tmp_path
) -> None:
    import mlflow
    from pyspark.sql import functions as F

    from anomalake.generators.markets import FaultRates, write_market_files
    from spark.jobs.markets_batch import load_files_to_bronze

    started = pd.Timestamp.now(tz="UTC")
    m = settings.markets
    for table in (*DAY_TABLES, m.bronze_table, m.quarantine_table, m.alerts_table):
        shutil.rmtree(settings.table_path(table), ignore_errors=True)
    write_market_files(tmp_path, 4, DAY1, 2, seed=9, faults=FaultRates(0.002, 0.01, 0.01, 0.01))
    loaded = load_files_to_bronze(spark, settings, tmp_path)
    assert loaded["quarantine"] > 0
    # bronze holds the rules' flags per bar: the loader scores with the speed layer's step

    dag = dagbag.get_dag("markets_batch")
    for day in (DAY1, DAY2):
        run, states = _run(dag, day)
        assert run.state == "success", states
    first = _snapshot(spark, settings, DAY2)
    run, _ = _run(dag, DAY2)
    assert run.state == "success"
    assert _snapshot(spark, settings, DAY2) == first  # a re-run gives identical tables

    read = lambda name: spark.read.format("delta").load(settings.table_path(name))  # noqa: E731
    on_day2 = F.col("trade_date") == DAY2
    silver = read("silver_markets").where(on_day2)
    assert silver.count() == silver.select("symbol", "minute").distinct().count() > 1000
    daily = {r["symbol"]: r for r in read("gold_markets_daily").where(on_day2).collect()}
    per_symbol = {r["symbol"]: r["count"] for r in silver.groupBy("symbol").count().collect()}
    assert {s: r["bars"] for s, r in daily.items()} == per_symbol
    stats = read("gold_markets_stats").where(on_day2)
    assert stats.count() == 4 * 4
    (close,) = stats.where("feature = 'close' AND symbol = 'SYM000'").collect()
    assert close["min"] <= close["p05"] <= close["p50"] <= close["p95"] <= close["max"]
    hist = read("gold_markets_histograms").where(on_day2 & (F.col("feature") == "volume"))
    for kind in ("fixed", "quantile"):
        assert hist.where(F.col("kind") == kind).agg(F.sum("count")).first()[0] == silver.count()
    charts = settings.reports_dir / "histograms" / str(DAY2)
    assert {p.name for p in charts.glob("*.png")} == {
        "return_pct.png",
        "range_pct.png",
        "volume.png",
    }
    rolling = read("gold_markets_rolling").where(on_day2).collect()
    assert len(rolling) == 4 and all(r["periods_in_window"] == 2 for r in rolling)
    fired = read(m.bronze_table).where(F.col("a1") | F.col("a2")).count()
    assert read("batch_anomalies_markets").count() == fired > 0
    rec = read("reconciliation_markets").agg(F.sum("matched"), F.sum("missed_by_stream")).first()
    assert tuple(rec) == (fired, 0)
    assert read("reconciliation_markets_details").count() == 0  # nothing to explain

    mlflow.set_tracking_uri(mlflow_server)

    def kmeans_runs():  # type: ignore[no-untyped-def]
        """This test's K-Means runs (other tests share the server and the experiment)."""
        runs = mlflow.search_runs(experiment_names=["local-markets-kmeans"])
        return runs[runs["start_time"] >= started]

    runs = kmeans_runs()
    assert len(runs) == 3 and runs["metrics.silhouette"].notna().all()

    docs = settings.reports_dir / "quality" / "data_docs"
    index = next(docs.rglob("index.html")).read_text()
    assert "bronze_markets" in index and "silver_markets" in index

    # Day 3: a bad writer lands bars with a negative volume; nothing downstream may run.
    bad = (
        read(m.bronze_table)
        .where(F.to_date("event_time") == DAY2)
        .withColumn("event_time", F.col("event_time") + F.expr("INTERVAL 1 DAY"))
        .withColumn("event_date", F.to_date("event_time"))
        .withColumn("volume", F.when(F.col("minute") % 50 == 0, -5).otherwise(F.col("volume")))
        .withColumn("topic", F.lit("bad-writer"))
    )
    bad.write.format("delta").mode("append").save(settings.table_path(m.bronze_table))
    run, states = _run(dag, DAY3)
    assert run.state == "failed"
    assert states["check_bronze"] == "failed"
    downstream = set(states) - {"check_bronze"}
    assert downstream and all(states[t] == "upstream_failed" for t in downstream), states
    assert read("silver_markets").where(F.col("trade_date") == DAY3).count() == 0
    assert len(kmeans_runs()) == 3
