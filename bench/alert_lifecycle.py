"""What folding one micro-batch's detections into the alert lifecycle costs.

``python -m bench.alert_lifecycle``.

Applies ``n`` batches of 2,000 detections (25 entities, 2 rules, random scores and event
times moving forward) to a fresh alerts table, two ways, and prints per way the median
and the slowest batch after the first five:

* ``read each batch``: the current alerts of the batch's entities and rules read from the
  table on every batch (a new :class:`anomalake.alerts.store.CurrentAlerts` each time);
* ``kept on the driver``: one ``CurrentAlerts`` for the whole run, as the stream's sink
  keeps it: read once, then a check of the table version per batch.

Both include the aggregation (one Spark job) and the merge (delta-rs since 2026-12-07;
a Spark MERGE before). The same detections are
applied both ways, each to its own table, after a warm-up on a third. A script that
prints figures, not a test.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any


def main(n: int = 25, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the two ways and print their figures."""
    from anomalake.alerts.store import AlertStore, CurrentAlerts, apply_detections
    from bench import isolated_spark
    from spark.alerts import DETECTIONS, collect_groups

    settings, spark = isolated_spark()
    rnd = random.Random(1)
    start = datetime(2026, 1, 5, 3, 45, tzinfo=UTC)
    entities = [f"S{i:02d}" for i in range(25)]
    batches = []
    for b in range(n):
        base = start + timedelta(minutes=80 * b)
        rows = [
            (
                rnd.choice(entities),
                rnd.choice(("A1", "A2")),
                rnd.random(),
                base + timedelta(minutes=rnd.randrange(80)),
                "live",
                "{}",
            )
            for _ in range(2000)
        ]
        batches.append(spark.createDataFrame(rows, DETECTIONS).cache())
    for batch in batches:
        batch.count()

    def run(table: str, current: Callable[[], CurrentAlerts], count: int = n) -> list[float]:
        seconds = []
        for b, batch in enumerate(batches[:count]):
            started = time.perf_counter()
            apply_detections(
                AlertStore(settings.table_path(table)),
                use_case="bench",
                groups=collect_groups(batch),
                tag=f"bench:{b}",
                suppress_seconds=settings.alerts.suppress_seconds,
                cuts=settings.alerts.severity_cuts,
                now=start + timedelta(minutes=80 * b),
                current=current(),
            )
            seconds.append(time.perf_counter() - started)
        return seconds

    run("lifecycle_warm_up", CurrentAlerts, 5)  # JIT and Delta warm-up
    kept = CurrentAlerts()
    results = {}
    for name, table, current in (
        ("read each batch", "lifecycle_read", CurrentAlerts),
        ("kept on the driver", "lifecycle_kept", lambda: kept),
    ):
        seconds = run(table, current)[5:]
        results[name] = {"median": statistics.median(seconds), "max": max(seconds)}
        echo(
            f"{name:>18}: median {results[name]['median']:.3f}s  "
            f"max {results[name]['max']:.3f}s per batch"
        )
    spark.stop()
    return results


if __name__ == "__main__":
    main()
