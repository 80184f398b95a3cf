"""DAG integrity: every DAG imports, is tagged, retries, and parses without heavy imports."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from anomalake.settings import Settings


@pytest.fixture(scope="module")
def dagbag(airflow_db: Settings):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(airflow_db.dags_folder))


@pytest.mark.integration
def test_dags_import_without_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert "markets_daily" in dagbag.dags


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


@pytest.mark.integration
def test_markets_daily_runs_through_dag_test(dagbag, spark, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    from spark.jobs.markets_daily import TARGET_TABLE

    bars = [
        (
            "ABC",
            f"2026-03-02 09:{15 + i:02d}:00+05:30",
            10.0 + i,
            11.0 + i,
            9.0 + i,
            10.0 + i,
            100 * (i + 1),
        )
        for i in range(3)
    ]
    bars += [("XYZ", "2026-03-03 09:15:00+05:30", 5.0, 5.0, 5.0, 5.0, 7)]
    cols = (
        "symbol string, ts string, open double, high double, low double, close double, volume long"
    )
    (
        spark.createDataFrame(bars, cols)
        .withColumn("event_time", F.to_timestamp("ts"))
        .drop("ts")
        .write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .save(settings.table_path(settings.markets.bronze_table))
    )

    dag = dagbag.get_dag("markets_daily")
    dag_run = dag.test(logical_date=datetime(2026, 3, 2, tzinfo=UTC))
    assert dag_run.state == "success"

    gold = spark.read.format("delta").load(settings.table_path(TARGET_TABLE))
    rows = gold.collect()
    assert len(rows) == 1
    row = rows[0]
    assert (row["symbol"], row["trade_date"], row["bars"]) == ("ABC", date(2026, 3, 2), 3)
    assert (row["first_close"], row["last_close"], row["volume"]) == (10.0, 12.0, 600)
    assert row["vwap"] == pytest.approx((10 * 100 + 11 * 200 + 12 * 300) / 600)

    # A second run of the same date replaces its partition: identical table.
    assert dag.test(logical_date=datetime(2026, 3, 2, tzinfo=UTC)).state == "success"
    assert sorted(map(tuple, gold.collect())) == sorted(map(tuple, rows))


@pytest.mark.integration
def test_markets_batch_dag_recomputes_and_reconciles_a_generated_day(  # type: ignore[no-untyped-def]
    dagbag, spark, settings: Settings, tmp_path
) -> None:
    from anomalake.generators.markets import FaultRates, write_market_files
    from anomalake.replay import replay_messages
    from spark.jobs.markets_batch import recompute_rules, records_as_kafka_rows, silver_bars
    from spark.streams.markets import alert_rows, bronze_rows, decode_and_validate, rule_params

    day = date(2026, 4, 7)
    write_market_files(tmp_path, 3, day, 1, seed=9, faults=FaultRates(0.0, 0.01, 0.0, 0.01))
    validated = decode_and_validate(
        records_as_kafka_rows(spark, list(replay_messages(tmp_path))), 4096
    )
    # What the speed layer would have landed for that day.
    scored = recompute_rules(silver_bars(validated), rule_params(settings.markets)).cache()
    m = settings.markets
    for frame, table in (
        (bronze_rows(scored), m.bronze_table),
        (alert_rows(scored, 0), m.alerts_table),
    ):
        frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
            settings.table_path(table)
        )

    dag = dagbag.get_dag("markets_batch")
    for _ in range(2):  # the second run must give identical tables
        run = dag.test(logical_date=datetime(2026, 4, 7, tzinfo=UTC))
        assert run.state == "success"
    read = spark.read.format("delta").load
    assert read(settings.table_path("silver_markets")).count() == scored.count()
    assert read(settings.table_path("gaps_markets")).count() > 0
    n_alerts = read(settings.table_path(m.alerts_table)).count()
    assert read(settings.table_path("batch_anomalies_markets")).count() == n_alerts
    (rec,) = read(settings.table_path("reconciliation_markets")).collect()
    assert (rec["matched"], rec["missed_by_stream"], rec["added_by_stream"]) == (n_alerts, 0, 0)
