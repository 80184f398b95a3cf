"""Benchmark of the markets speed layer (``anomalake bench stream``).

Prints, from one run on one machine:

1. the raw Kafka consume rate (confluent-kafka, no processing) over a pre-loaded topic;
2. the speed layer's sustained rate over the same topic (batches after the first, which
   carries JVM and Python-worker warm-up), and its ratio to (1);
3. event -> alert latency at a fixed input rate: bars are produced at ``rate``
   events/s and each fired bar's latency is the commit time of the alerts-table version
   that folded it into its alert (before 2026-12-07: the version that held its per-bar
   alert row) minus the Kafka timestamp of the bar (set when the producer sent it).
   p50/p95/p99.

It starts its own Kafka broker (the settings' ports, an isolated home) and stops it.
This is a script that prints figures, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import json
import math
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import pandas as pd

from anomalake.generators.markets import SESSION_MINUTES, generate_bars, symbol_names
from anomalake.producer import SCHEMA_VERSION, produce
from anomalake.settings import Settings, load_settings
from bench.streams import (
    alert_latencies,
    latency_figures,
    new_topic,
    paced,
    raw_consume_rate,
    run_until,
)


def bar_messages(n_symbols: int, days: int, seed: int = 1) -> list[tuple[str, bytes]]:
    """Clean bars of ``n_symbols`` over ``days``, interleaved by time, as Kafka messages."""
    frames = [
        generate_bars(s, date(2026, 1, 5), days, seed=seed, start_price=50.0 + i)[0]
        for i, s in enumerate(symbol_names(n_symbols))
    ]
    bars = pd.concat(frames).sort_values("timestamp", kind="stable")
    stamps = bars["timestamp"].map(lambda t: t.isoformat(sep=" ")).tolist()
    return [
        (
            sym,
            json.dumps(
                {
                    "v": SCHEMA_VERSION,
                    "symbol": sym,
                    "timestamp": ts,
                    "open": o,
                    "high": h,
                    "low": lo,
                    "close": c,
                    "volume": int(v),
                },
                separators=(",", ":"),
            ).encode(),
        )
        for sym, ts, o, h, lo, c, v in zip(
            bars["symbol"],
            stamps,
            bars["open"],
            bars["high"],
            bars["low"],
            bars["close"],
            bars["volume"],
            strict=True,
        )
    ]


def sustained_rate(
    spark: Any, settings: Settings, topic: str, expected: int, max_offsets: int = 50000
) -> dict[str, float]:
    """The speed layer over a pre-loaded topic: rows/s over batches after the first."""
    from spark.streams.speed import start

    s = settings.with_markets_query(
        f"sustained_{uuid.uuid4().hex[:6]}", max_offsets_per_trigger=max_offsets
    )
    query = start(spark, s, "markets", topic=topic)
    run_until(query, lambda: sum(p["numInputRows"] for p in query.recentProgress) >= expected, 900)
    progress = [p for p in query.recentProgress if p["numInputRows"] > 0]
    query.stop()
    first, rest = progress[0], progress[1:]
    rows = sum(p["numInputRows"] for p in rest)
    seconds = sum(p["durationMs"]["triggerExecution"] for p in rest) / 1000
    return {
        "first_batch_rows": first["numInputRows"],
        "first_batch_s": first["durationMs"]["triggerExecution"] / 1000,
        "batches": len(rest),
        "rows": rows,
        "rate": rows / seconds if seconds else float("nan"),
        "mean_batch_rows": rows / len(rest) if rest else 0,
    }


def latency(
    spark: Any,
    settings: Settings,
    messages: list[tuple[str, bytes]],
    rate: float,
    seconds: float,
    warmup_seconds: float = 20.0,
) -> dict[str, float]:
    """Event -> alert latency at a fixed input rate, after a warm-up at the same rate.

    A fired bar's latency is the time of the alerts-table commit that folded it into its
    alert (the micro-batch's commit, tagged with its batch id) minus the Kafka timestamp
    of the bar (set when the producer sent it). The first ``warmup_seconds`` of bars warm
    the JVM, the Python workers and Delta's snapshot (the first data batch costs seconds
    more than the next ones); the job is left to drain them, then ``seconds`` of bars are
    measured. Only measured bars count.
    """
    from pyspark.sql import functions as F

    from spark.streams.speed import start

    s = settings.with_markets_query(f"latency_{uuid.uuid4().hex[:6]}", trigger_seconds=0.0)
    topic = new_topic(s, 2)
    query = start(spark, s, "markets", topic=topic)
    n_warm, n = int(rate * warmup_seconds), int(rate * seconds)
    if n_warm + n > len(messages):
        raise ValueError(f"{n_warm + n} bars needed, {len(messages)} generated")

    # recentProgress keeps the last 100 updates, and once the input stops the query runs
    # quick no-data batches (the state's idle flush): keep every batch as it is reported
    seen: dict[int, dict[str, Any]] = {}

    def processed() -> int:
        seen.update((p["batchId"], p) for p in query.recentProgress)
        return sum(p["numInputRows"] for p in seen.values())

    produce(s.kafka, topic, paced(messages[:n_warm], rate))
    run_until(query, lambda: processed() >= n_warm, 300)
    measured_from = time.time()
    sent_at = time.perf_counter()
    report = produce(s.kafka, topic, paced(messages[n_warm : n_warm + n], rate))
    achieved = report.delivered / (time.perf_counter() - sent_at)
    run_until(query, lambda: processed() >= n_warm + n, 300)
    time.sleep(s.markets.flush_after_seconds + 3)
    processed()
    batches = [p for p in seen.values() if p["numInputRows"] > 0]
    query.stop()

    fired = (
        spark.read.format("delta")
        .load(s.table_path(s.markets.bronze_table))
        .where(
            (F.col("a1") | F.col("a2")) & (F.col("kafka_timestamp").cast("double") >= measured_from)
        )
    )
    values = alert_latencies(spark, s, s.markets.alerts_table, topic, batches, fired)
    durations = sorted(
        p["durationMs"]["triggerExecution"] / 1000
        for p in batches
        if p["timestamp"] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(measured_from))
    )
    return {
        "input_rate": achieved,
        "events": report.delivered,
        "fired_bars": len(values),
        **latency_figures(values, durations),
    }


def main(
    n_symbols: int = 50,
    days: int = 16,
    rate: float = 5000.0,
    seconds: float = 60.0,
    warmup_seconds: float = 20.0,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the three measurements and print them.

    The topic holds ``days`` trading days of bars, or more if the latency run (warm-up
    included) needs more bars than that.
    """
    from anomalake.install import install
    from anomalake.stack import Kafka
    from spark.session import get_spark

    home = tempfile.mkdtemp(prefix="anomalake-bench-")
    os.environ["ANOMALAKE_HOME"] = home
    settings = load_settings(home=home)
    install(settings)
    broker = Kafka(settings)
    broker.up()
    try:
        t0 = time.perf_counter()
        needed = rate * (warmup_seconds + seconds) / (n_symbols * SESSION_MINUTES)
        days = max(days, math.ceil(needed))
        messages = bar_messages(n_symbols, days)
        echo(
            f"generated {len(messages)} bars ({n_symbols} symbols x {days} days) "
            f"in {time.perf_counter() - t0:.1f}s"
        )
        topic = new_topic(settings, 2)
        t0 = time.perf_counter()
        report = produce(settings.kafka, topic, iter(messages))
        echo(
            f"produced {report.delivered} at {report.delivered / (time.perf_counter() - t0):,.0f}"
            " msg/s (idempotent, acks=all)"
        )
        raw = raw_consume_rate(settings, topic, report.delivered)
        echo(f"raw consume (confluent-kafka, no processing): {raw:,.0f} msg/s")
        spark = get_spark(settings)
        sus = sustained_rate(spark, settings, topic, report.delivered)
        echo(
            f"speed layer sustained: {sus['rate']:,.0f} events/s over {sus['batches']} batches "
            f"(mean {sus['mean_batch_rows']:,.0f} rows/batch; first batch "
            f"{sus['first_batch_rows']:,} rows in {sus['first_batch_s']:.1f}s excluded)"
        )
        echo(f"ratio to raw consume: {100 * sus['rate'] / raw:.1f} %")
        lat = latency(spark, settings, messages, rate, seconds, warmup_seconds)
        echo(
            f"latency at {lat['input_rate']:,.0f} events/s for {seconds:.0f}s after a "
            f"{warmup_seconds:.0f}s warm-up ({lat['fired_bars']} fired bars, event -> alert "
            f"commit): p50 {lat['p50']:.2f}s  "
            f"p95 {lat['p95']:.2f}s  p99 {lat['p99']:.2f}s  max {lat['max']:.2f}s; "
            f"{lat['batches']} batches, median {lat['batch_s_median']:.2f}s, "
            f"max {lat['batch_s_max']:.2f}s"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        echo(
            f"driver python peak RSS {peak:.0f} MiB; Spark driver memory "
            f"{settings.spark.driver_memory}; cores {os.cpu_count()}"
        )
        return {"raw": raw, "sustained": sus, "latency": lat}
    finally:
        broker.down()


if __name__ == "__main__":
    main()
