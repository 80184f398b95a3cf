"""What one exactly-once micro-batch append to a Delta table costs.

``python -m bench.delta_appends``.

Appends the same 2,000 rows ``n`` times to a fresh table, three ways, and prints the
median and the slowest append after the first five:

* ``plain``: a bare append;
* ``txnAppId``: Delta's idempotent-write options (``txnAppId``/``txnVersion``), which look
  the transaction up in the table's state on every append;
* ``BatchAppender``: this project's sinks (``spark.tables``): the batch id in the commit's
  user metadata, the table's history read only on a run's first append.

The slowest append is the one that writes the log checkpoint (every 10 commits here).
A script that prints figures, not a test.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any


def timed(n: int, append: Callable[[int], None]) -> list[float]:
    """Seconds of each of ``n`` appends."""
    out = []
    for i in range(n):
        started = time.perf_counter()
        append(i)
        out.append(time.perf_counter() - started)
    return out


def main(n: int = 25, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the three ways and print their figures."""
    from pyspark.sql import functions as F

    from bench import isolated_spark
    from spark.tables import BatchAppender

    settings, spark = isolated_spark()
    home = str(settings.home)
    rows = spark.range(2000).select(
        "id",
        (F.col("id") * 1.5).alias("x"),
        F.lit("SYM").alias("s"),
        F.current_timestamp().alias("t"),
    )
    rows = rows.cache()
    rows.count()

    def table() -> str:
        path = tempfile.mkdtemp(dir=home) + "/t"
        rows.limit(0).write.format("delta").save(path)
        return path

    def plain(path: str) -> Callable[[int], None]:
        return lambda i: rows.coalesce(1).write.format("delta").mode("append").save(path)

    def txn(path: str) -> Callable[[int], None]:
        def append(i: int) -> None:
            writer = rows.coalesce(1).write.format("delta").mode("append")
            writer.option("txnAppId", "bench").option("txnVersion", i).save(path)

        return append

    def marked(path: str) -> Callable[[int], None]:
        appender = BatchAppender()

        def append(i: int) -> None:
            appender.append(rows, path, "bench", i, None)

        return append

    timed(10, plain(table()))  # JIT and Delta warm-up
    results = {}
    for name, way in (("plain", plain), ("txnAppId", txn), ("BatchAppender", marked)):
        seconds = timed(n, way(table()))[5:]
        results[name] = {"median": statistics.median(seconds), "max": max(seconds)}
        echo(f"{name:>14}: median {results[name]['median']:.3f}s  max {results[name]['max']:.3f}s")
    spark.stop()
    return results


if __name__ == "__main__":
    main()
