"""``anomalake demo``: the markets use case end to end on embedded defaults.

generate minute bars with injected anomalies and export faults -> replay them to Kafka
(keyed by symbol, idempotent producer) -> the speed layer (Spark Structured Streaming with
per-symbol rule state) writes bronze, quarantine and alerts Delta tables and the alerts
topic -> print a summary and where to look.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from anomalake import stack
from anomalake.errors import AnomalakeError
from anomalake.generators.markets import FaultRates, trading_days, write_market_files
from anomalake.install import install
from anomalake.producer import produce
from anomalake.replay import replay_messages
from anomalake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def table_counts(spark: SparkSession, settings: Settings) -> dict[str, int]:
    """Rows in the bronze, quarantine and alerts tables."""
    m = settings.markets
    return {
        name: spark.read.format("delta").load(settings.table_path(name)).count()
        for name in (m.bronze_table, m.quarantine_table, m.alerts_table)
    }


def run_demo(
    settings: Settings, n_symbols: int, days: int, echo: Callable[[str], None] = print
) -> dict[str, int]:
    """Run the demo; returns the table counts."""
    from pyspark.sql import functions as F

    from spark.session import get_spark
    from spark.streams.speed import start

    install(settings)
    stack.up(settings, echo=echo)
    spark = get_spark(settings)
    m = settings.markets
    start_day = _next_day(spark, settings)
    data_dir = Path(settings.home) / "demo" / f"markets-{start_day.isoformat()}"
    files = write_market_files(
        data_dir, n_symbols, start_day, days, seed=start_day.toordinal(), faults=FaultRates()
    )
    echo(f"generated {len(files)} symbol files with labels and faults in {data_dir}")
    query = start(spark, settings, "markets")  # creates the tables on the first run
    landed = table_counts(spark, settings)
    before = landed[m.bronze_table] + landed[m.quarantine_table]
    report = produce(settings.kafka, settings.markets.topic, replay_messages(data_dir))
    if report.failed:
        query.stop()
        raise AnomalakeError(
            f"{report.failed} of {report.sent} records not delivered",
            "check `anomalake status` and the Kafka log",
        )
    echo(f"replayed {report.delivered} records to '{settings.markets.topic}'")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if query.exception():
            raise AnomalakeError(
                f"the speed layer failed: {query.exception()}",
                "read the error above; restarting resumes from the checkpoint",
            )
        counts = table_counts(spark, settings)
        if counts[m.bronze_table] + counts[m.quarantine_table] - before >= report.delivered:
            break
        time.sleep(2)

    # The batch that stored the last records folds their alerts after its bronze: wait for
    # it to finish. (Not processAllAvailable: with the processing-time timeouts of the
    # markets state, Spark runs a batch every trigger and that call never returns.)
    def last_batch() -> int:
        progress = query.lastProgress
        return -1 if progress is None else int(progress["batchId"])

    landed_in = last_batch() + 1
    while time.monotonic() < deadline + 60:
        if last_batch() >= landed_in:
            break
        time.sleep(0.5)
    query.stop()
    counts = table_counts(spark, settings)
    echo("")
    echo(
        f"events in bronze      {counts[m.bronze_table]:>8}  {settings.table_path(m.bronze_table)}"
    )
    echo(
        f"quarantined records   {counts[m.quarantine_table]:>8}  "
        f"{settings.table_path(m.quarantine_table)}"
    )
    bronze = spark.read.format("delta").load(settings.table_path(m.bronze_table))
    fired = bronze.where(F.col("a1") | F.col("a2"))
    per_rule = fired.agg(
        F.count(F.lit(1)).alias("bars"),
        F.count(F.when(F.col("a1"), 1)).alias("A1"),
        F.count(F.when(F.col("a2"), 1)).alias("A2"),
    ).first()
    assert per_rule is not None
    echo(
        f"bars fired on         {per_rule['bars']:>8}  (A1 {per_rule['A1']}, A2 {per_rule['A2']};"
        " their flags are in bronze)"
    )
    alerts = spark.read.format("delta").load(settings.table_path(m.alerts_table))
    states = ", ".join(
        f"{r['status']} {r['count']}"
        for r in alerts.groupBy("status").count().orderBy("status").collect()
    )
    echo(
        f"alerts                {counts[m.alerts_table]:>8}  {settings.table_path(m.alerts_table)}"
        f" and topic '{settings.kafka.alerts_topic}' ({states or 'none'})"
    )
    echo(
        f"an analyst gets {counts[m.alerts_table]} alerts for {per_rule['bars']} fired bars: "
        "one per symbol and rule until resolved (`anomalake alerts list --use-case markets`)"
    )
    top = fired.groupBy("symbol").count().orderBy(F.desc("count"), "symbol").limit(5).collect()
    echo("most fired bars:      " + ", ".join(f"{r['symbol']} {r['count']}" for r in top))
    reasons = (
        spark.read.format("delta")
        .load(settings.table_path(m.quarantine_table))
        .select(F.regexp_extract("reason", r"^([a-zA-Z -]+)", 1).alias("r"))
        .groupBy("r")
        .count()
        .orderBy(F.desc("count"))
        .collect()
    )
    echo("quarantine reasons:   " + ", ".join(f"{r['r'].strip()} {r['count']}" for r in reasons))
    echo(f"checkpoint:           {settings.checkpoint_path(m.query_name)}")
    for st in stack.status(settings):
        echo(f"{st.name:8} {'healthy' if st.healthy else 'DOWN':8} {st.url}")
    session_days = trading_days(start_day, days)
    echo(
        f"batch layer for these days: anomalake batch run --date {session_days[0]} "
        f"--end {session_days[-1]}   (quality gates, silver, gold, K-Means; Data Docs in "
        f"{settings.reports_dir / 'quality'})"
    )
    echo("keep streaming: anomalake stream markets   |   stop everything: make down")
    return counts


def _next_day(spark: SparkSession, settings: Settings) -> date:
    """The demo's first trading day: after what bronze holds, so each run continues."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    path = settings.table_path(settings.markets.bronze_table)
    if not DeltaTable.isDeltaTable(spark, path):
        return date(2026, 1, 5)
    last = spark.read.format("delta").load(path).agg(F.max("event_date")).first()
    if last is None or last[0] is None:
        return date(2026, 1, 5)
    return last[0] + timedelta(days=1)
