"""Benchmark of the markets batch layer (``anomalake bench batch``).

For each size (symbols x trading days), in one run on one machine:

1. generates export files with the project's generator and lands them in bronze with
   ``load_files_to_bronze`` (the backfill path);
2. runs every task of the ``markets_batch`` DAG once over the whole date range (the same
   functions the DAG calls per day, given a range instead of one date), printing the wall
   time and the peak memory (RSS of this process and its children: the Spark JVM and the
   Python workers) of each;
3. runs the same aggregations (daily summary, per-feature statistics with quantiles,
   fixed-bin histograms, 20-day rolling means) in DuckDB over the same silver Parquet
   files, and prints Spark's time over DuckDB's.

It starts its own MLflow server (K-Means is tracked) in an isolated home and stops it.
A script that prints figures, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import psutil

from anomalake.errors import AnomalakeError
from anomalake.generators.markets import trading_days, write_market_files
from anomalake.settings import Settings, load_settings

START = date(2022, 1, 3)


class PeakMemory:
    """Samples the RSS of this process and its children until stopped; keeps the peak."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process(os.getpid())
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


@contextmanager
def timed(
    label: str, table: list[tuple[str, float, int]], echo: Callable[[str], Any]
) -> Iterator[None]:
    """Time the block and sample its peak memory; append (label, seconds, peak bytes)."""
    with PeakMemory() as mem:
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
    table.append((label, seconds, mem.peak))
    echo(f"  {label:<34} {seconds:8.1f} s   peak {mem.peak / 2**30:5.2f} GiB")


DUCKDB_QUERIES = {
    "daily summary": """
        COPY (
          SELECT trade_date, symbol, count(*) AS bars, arg_min(close, minute) AS first_close,
                 arg_max(close, minute) AS last_close, min(low) AS low, max(high) AS high,
                 sum(volume) AS volume, sum(close * volume) / nullif(sum(volume), 0) AS vwap,
                 stddev_samp(return_pct) AS volatility
          FROM features GROUP BY trade_date, symbol
        ) TO '{out}/daily.parquet' (FORMAT parquet)""",
    "statistics + quantiles": """
        COPY (
          SELECT trade_date, symbol, feature, count(value) AS count, min(value), max(value),
                 avg(value) AS mean, stddev_samp(value) AS std,
                 approx_quantile(value, [0.05, 0.25, 0.5, 0.75, 0.95]) AS quantiles
          FROM (UNPIVOT features ON close, volume, return_pct, range_pct
                INTO NAME feature VALUE value)
          GROUP BY trade_date, symbol, feature
        ) TO '{out}/stats.parquet' (FORMAT parquet)""",
    "fixed-bin histograms": """
        COPY (
          WITH v AS (
            SELECT trade_date, feature, value FROM (UNPIVOT features ON return_pct, range_pct,
              volume INTO NAME feature VALUE value) WHERE value IS NOT NULL),
          e AS (SELECT trade_date, feature, min(value) AS lo, max(value) AS hi FROM v GROUP BY ALL)
          SELECT trade_date, feature,
                 CASE WHEN hi = lo THEN 0
                      ELSE least(floor((value - lo) / ((hi - lo) / {bins})), {bins} - 1) END AS bin,
                 count(*) AS count
          FROM v JOIN e USING (trade_date, feature) GROUP BY ALL
        ) TO '{out}/histograms.parquet' (FORMAT parquet)""",
    "rolling 20-day means": """
        COPY (
          SELECT symbol, trade_date,
                 avg(last_close) OVER w AS last_close_mean, avg(volume) OVER w AS volume_mean,
                 avg(vwap) OVER w AS vwap_mean
          FROM read_parquet('{out}/daily.parquet')
          WINDOW w AS (PARTITION BY symbol ORDER BY trade_date
                       ROWS BETWEEN {rolling} PRECEDING AND CURRENT ROW)
        ) TO '{out}/rolling.parquet' (FORMAT parquet)""",
}


def duckdb_run(
    silver: str, out: Path, bins: int, rolling: int, echo: Callable[[str], Any]
) -> list[tuple[str, float, int]]:
    """The gold aggregations in DuckDB over the silver table's Parquet files."""
    import duckdb

    table: list[tuple[str, float, int]] = []
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count()}")
    with timed("duckdb: read silver + features", table, echo):
        con.execute(
            f"""CREATE TABLE features AS
            SELECT *, (close / lag(close) OVER w - 1) * 100 AS return_pct,
                   (high - low) / close * 100 AS range_pct
            FROM read_parquet('{silver}/trade_date=*/*.parquet', hive_partitioning = true)
            WINDOW w AS (PARTITION BY symbol, trade_date ORDER BY minute)"""
        )
    for name, sql in DUCKDB_QUERIES.items():
        with timed(f"duckdb: {name}", table, echo):
            con.execute(sql.format(out=out, bins=bins, rolling=rolling - 1))
    con.close()
    return table


def spark_run(
    settings: Settings, exports: Path, echo: Callable[[str], Any]
) -> list[tuple[str, float, int]]:
    """Every markets_batch task once over the whole range, timed."""
    from spark.jobs.markets_batch import build_silver, load_files_to_bronze, recompute_and_reconcile
    from spark.jobs.markets_clusters import run as cluster
    from spark.jobs.markets_gold import (
        build_daily,
        build_rolling,
        daily_histograms,
        minute_features,
        render_histograms,
    )
    from spark.jobs.markets_quality import check_bronze, check_silver
    from spark.session import get_spark
    from spark.tables import Days, read_table, replace_days

    spark = get_spark(settings)
    m = settings.markets
    table: list[tuple[str, float, int]] = []
    with timed("load files -> bronze/quarantine", table, echo):
        load_files_to_bronze(spark, settings, exports)
    dates = [
        r[0]
        for r in read_table(spark, settings, m.bronze_table)
        .select("event_date")
        .distinct()
        .collect()
    ]
    days = Days(min(dates), max(dates))
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("check_bronze (GE)", lambda: check_bronze(spark, settings, days)),
        ("build_silver (+ gaps)", lambda: build_silver(spark, settings, days)),
        ("check_silver (GE)", lambda: check_silver(spark, settings, days)),
        ("build_daily (summary + statistics)", lambda: build_daily(spark, settings, days)),
        (
            "build_histograms: table",
            lambda: replace_days(
                daily_histograms(
                    minute_features(read_table(spark, settings, m.silver_table)), m.histogram_bins
                ),
                settings.table_path(m.gold_histograms_table),
                days,
            ),
        ),
        (
            "build_histograms: PNG charts",
            lambda: render_histograms(
                read_table(spark, settings, m.gold_histograms_table).toPandas(),
                settings.reports_dir / "histograms",
            ),
        ),
        ("build_rolling", lambda: build_rolling(spark, settings, days)),
        ("cluster_symbol_days (K-Means, MLflow)", lambda: cluster(spark, settings, days)),
        (
            "recompute_rules (+ reconciliation)",
            lambda: recompute_and_reconcile(spark, settings, days),
        ),
    ]
    for label, step in steps:
        with timed(label, table, echo):
            step()
    return table


def require_duckdb() -> None:
    """Fail before any work if DuckDB, the engine the Spark jobs are compared with, is absent."""
    try:
        import duckdb  # noqa: F401
    except ImportError as missing:
        raise AnomalakeError(
            "duckdb is not installed: the batch benchmark compares Spark with it",
            "pip install 'anomalake[bench]' (`make install` includes it)",
        ) from missing


def main(
    n_symbols: int = 25,
    years: tuple[int, ...] = (1, 4),
    days_per_year: int = 250,
    echo: Callable[[str], Any] = print,
) -> None:
    """Run the benchmark for each size and print the figures."""
    from anomalake.stack import Mlflow

    require_duckdb()
    echo(f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM")
    for n_years in years:
        n_days = n_years * days_per_year
        with tempfile.TemporaryDirectory(prefix="anomalake-bench-batch-") as tmp:
            settings = load_settings(home=Path(tmp) / "home")
            mlflow_server = Mlflow(settings)
            mlflow_server.up()
            try:
                exports = Path(tmp) / "exports"
                first, last = trading_days(START, n_days)[0], trading_days(START, n_days)[-1]
                echo(f"\n== {n_symbols} symbols x {n_days} trading days ({first} .. {last}) ==")
                t0 = time.perf_counter()
                write_market_files(exports, n_symbols, START, n_days, seed=1)
                echo(
                    f"  generate files (not part of the pipeline) {time.perf_counter() - t0:8.1f} s"
                )
                spark_table = spark_run(settings, exports, echo)
                from spark.session import get_spark
                from spark.tables import read_table

                rows = read_table(
                    get_spark(settings), settings, settings.markets.silver_table
                ).count()
                echo(f"  silver rows: {rows:,}")
                duck_table = duckdb_run(
                    settings.table_path(settings.markets.silver_table),
                    Path(tmp) / "duckdb",
                    settings.markets.histogram_bins,
                    settings.markets.rolling_days,
                    echo,
                )
            finally:
                mlflow_server.down()
        spark_total = sum(s for _, s, _ in spark_table)
        comparable = {
            "build_daily (summary + statistics)",
            "build_histograms: table",
            "build_rolling",
        }
        spark_same = sum(s for label, s, _ in spark_table if label in comparable)
        duck_total = sum(s for _, s, _ in duck_table)
        peak = max(p for *_, p in spark_table) / 2**30
        echo(f"  Spark pipeline total {spark_total:.1f} s, peak {peak:.2f} GiB")
        echo(
            f"  same aggregations: Spark {spark_same:.1f} s vs DuckDB {duck_total:.1f} s "
            f"(Spark / DuckDB = {spark_same / duck_total:.1f}x)"
        )


if __name__ == "__main__":
    main()
