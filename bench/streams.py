"""What the stream benchmarks share: topics, a bare consumer, pacing, alert latency."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from anomalake.settings import Settings


def new_topic(settings: Settings, partitions: int) -> str:
    """A fresh topic for one measurement."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka.client_config())
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    return topic


def raw_consume_rate(settings: Settings, topic: str, expected: int) -> float:
    """Messages per second a bare confluent-kafka consumer reads from ``topic``."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52428800,
        }
    )
    consumer.subscribe([topic])
    seen, started = 0, None
    deadline = time.monotonic() + 300
    while seen < expected and time.monotonic() < deadline:
        batch = consumer.consume(10000, timeout=1.0)
        if batch and started is None:
            started = time.perf_counter()
        seen += sum(1 for m in batch if m.error() is None)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return seen / elapsed if elapsed else float("nan")


def run_until(query: Any, done: Callable[[], bool], timeout: float) -> None:
    """Wait for ``done`` (or the timeout, or a query failure)."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        if query.exception():
            raise RuntimeError(query.exception())
        time.sleep(0.5)


def paced(
    messages: Iterable[tuple[str, bytes]], rate: float, tick: float = 0.01
) -> Iterator[tuple[str, bytes]]:
    """Yield messages at ``rate`` per second, waking every ``tick`` seconds.

    Messages go out in bursts of ``rate * tick``, each at most one tick before its due
    time (latency is measured from the moment it is sent); waking once per tick instead of
    once per message keeps the harness's own CPU (it shares the two cores) low.
    """
    started = time.perf_counter()
    per_tick = max(1, int(rate * tick))
    for i, message in enumerate(messages):
        if i % per_tick == 0:
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        yield message


def alert_latencies(
    spark: Any,
    settings: Settings,
    alerts_table: str,
    topic: str,
    batches: list[dict[str, Any]],
    fired: Any,
) -> list[float]:
    """Seconds from each ``fired`` record's Kafka timestamp to its alert's commit, sorted.

    ``fired``: bronze rows (``partition``, ``offset``, ``kafka_timestamp``) that fired a
    rule; ``batches``: the query's progress reports. Which micro-batch read a record comes
    from the Kafka offsets each batch reports; each alerts-table commit of a stream names
    its batch (``<query>:<query id>:<batch id>``).
    """
    from pyspark.sql import functions as F

    from anomalake.alerts.store import AlertStore

    def offsets(value: Any) -> dict[str, int]:
        """A source's offsets of ``topic`` per partition (progress reports them as JSON)."""
        parsed = (json.loads(value) if isinstance(value, str) else value) or {}
        return {str(k): int(v) for k, v in parsed.get(topic, {}).items()}

    ranges = [
        (p["batchId"], int(part), offsets(source["startOffset"]).get(part, 0), end)
        for p in batches
        for source in p["sources"]
        for part, end in offsets(source["endOffset"]).items()
    ]
    read_by = spark.createDataFrame(ranges, "batch_id long, p int, start long, end long")
    commits = [
        (int(tag.rsplit(":", 1)[1]), when / 1000)
        for tag, when in AlertStore(settings.table_path(alerts_table)).stream_commits()
    ]
    commit_of = spark.createDataFrame(commits, "batch_id long, committed_at double")
    lat = (
        fired.join(
            read_by,
            (F.col("partition") == F.col("p"))
            & (F.col("offset") >= F.col("start"))
            & (F.col("offset") < F.col("end")),
        )
        .join(commit_of, "batch_id")
        .select((F.col("committed_at") - F.col("kafka_timestamp").cast("double")).alias("s"))
        .where(F.col("s").isNotNull())
    )
    return sorted(r["s"] for r in lat.collect())


def latency_figures(values: list[float], durations: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of sorted latencies; count, median and max of batch durations."""
    q = statistics.quantiles(values, n=100) if len(values) > 100 else [float("nan")] * 99
    return {
        "p50": q[49],
        "p95": q[94],
        "p99": q[98],
        "max": values[-1] if values else float("nan"),
        "batches": len(durations),
        "batch_s_median": statistics.median(durations) if durations else float("nan"),
        "batch_s_max": max(durations) if durations else float("nan"),
    }
