"""Capacity of the wearables speed layer (``anomalake bench wearables``).

How many wearers one machine follows in real time: ``wearers`` devices each send one
frame a second (live frames, times = the wall clock) for ``warmup_seconds`` and then
``seconds`` more, through the one speed layer with the registered episode classifier
(``@champion``). It prints, for the measured part:

1. frames in per second (produced) and frames scored per second (the query's input rows
   over the batches that started in the measured part), and the backlog left when the
   producer stopped, in seconds of input;
2. frame -> alert latency: for each frame whose window fired a rule, the commit time of
   the alerts-table version that folded it in minus the frame's Kafka timestamp (set
   when the producer sent it): p50/p95/p99/max;
3. micro-batches: how many, median and max duration.

Devices are copies of ``source_wearers`` generated wearers (each with one scheduled
spell, off the wrist or a medical episode, so that windows fire), renamed: the step's
work per frame does not depend on whose signals they are. It starts its own Kafka broker and
MLflow server (an isolated home), trains a small model to serve, and stops them.
A script that prints figures, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from anomalake.producer import SCHEMA_VERSION, produce
from anomalake.settings import Settings, load_settings
from bench.streams import alert_latencies, latency_figures, new_topic, paced, run_until


def source_frames(out: Path, wearers: int, seconds: int, seed: int = 21) -> list[list[dict]]:
    """Per generated wearer, its frames (one per second), ``seconds`` of them.

    Each wearer has one scheduled spell, a third of the run long, starting from
    ``seconds // 3`` on (staggered by wearer), so that windows fire in
    the measured part: off the wrist for even wearers (a device notice, whatever the
    model), a medical episode for odd ones (an alert if the model finds it).
    """
    from anomalake.detection.wearables import MEDICAL
    from anomalake.generators.wearables import DEFAULT_START, write_wearer
    from anomalake.loaders.e4 import frames, load_export

    out.mkdir(parents=True, exist_ok=True)
    sources = []
    for i in range(wearers):
        kind = "off_wrist" if i % 2 == 0 else MEDICAL[(i // 2) % len(MEDICAL)]
        begin = seconds // 3 + (7 * i) % max(1, seconds // 6)  # staggered, within the run
        folder, _, _ = write_wearer(
            out,
            f"S{i:03d}",
            DEFAULT_START,
            seconds + 60,
            seed + i,
            schedule=[(kind, begin, begin + seconds // 3)],
        )
        sources.append(list(frames(load_export(folder)))[:seconds])
    return sources


def live_frames(
    sources: list[list[dict]], wearers: int, first_second: int, seconds: int, start: int
) -> Iterator[tuple[str, bytes]]:
    """``wearers`` devices' frames of ``seconds`` seconds from ``first_second`` on, live.

    Device ``B<i>`` sends source wearer ``i mod len(sources)``'s frames, timed from
    ``start`` (Unix seconds); devices interleaved by second.
    """
    for second in range(first_second, first_second + seconds):
        for i in range(wearers):
            doc = sources[i % len(sources)][second]
            device = f"B{i:05d}"
            frame = {**doc, "device": device, "time": start + second}
            value = {"v": SCHEMA_VERSION, "origin": "live", **frame}
            yield device, json.dumps(value, separators=(",", ":")).encode()


def train_model(settings: Settings, folder: Path) -> str:
    """A small episode classifier registered and promoted: the one the stream serves."""
    from anomalake.generators.wearables import write_wearables_files
    from ml.wearables import train_and_register

    write_wearables_files(folder, 3, 2.0, seed=11, episodes_per_hour=1.5)
    trained = train_and_register(settings, folder)
    return f"v{trained['version']} ({trained['decision']['reason']})"


def capacity(
    spark: Any,
    settings: Settings,
    sources: list[list[dict]],
    wearers: int,
    seconds: int,
    warmup_seconds: int,
) -> dict[str, Any]:
    """Stream ``wearers`` live devices; measure the part after the warm-up."""
    from pyspark.sql import functions as F

    from spark.streams.speed import start

    w = settings.wearables
    topic = new_topic(settings, w.topic_partitions)
    query = start(spark, settings, "wearables", topic=topic)
    seen: dict[int, dict[str, Any]] = {}

    def processed() -> int:
        seen.update((p["batchId"], p) for p in query.recentProgress)
        return sum(p["numInputRows"] for p in seen.values())

    start_at = int(time.time()) + 1
    n_warm = wearers * warmup_seconds
    produce(
        settings.kafka,
        topic,
        paced(live_frames(sources, wearers, 0, warmup_seconds, start_at), float(wearers)),
    )
    measured_from = time.time()
    sent_at = time.perf_counter()
    report = produce(
        settings.kafka,
        topic,
        paced(
            live_frames(sources, wearers, warmup_seconds, seconds, start_at + warmup_seconds),
            float(wearers),
        ),
    )
    sending = time.perf_counter() - sent_at
    backlog = n_warm + report.delivered - processed()
    drain_from = time.perf_counter()
    run_until(query, lambda: processed() >= n_warm + report.delivered, 900)
    drain = time.perf_counter() - drain_from
    time.sleep(3)
    processed()
    query.stop()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(measured_from))
    measured = [p for p in seen.values() if p["numInputRows"] > 0 and p["timestamp"] >= stamp]
    batches = [p for p in seen.values() if p["numInputRows"] > 0]
    durations = sorted(p["durationMs"]["triggerExecution"] / 1000 for p in measured)
    busy = sum(durations)
    fired = (
        spark.read.format("delta")
        .load(settings.table_path(w.bronze_table))
        .where(
            (F.size(F.coalesce(F.col("rules"), F.array())) > 0)
            & (F.col("kafka_timestamp").cast("double") >= measured_from)
        )
    )
    values = alert_latencies(spark, settings, w.alerts_table, topic, batches, fired)
    return {
        "input_rate": report.delivered / sending,
        "scored_rate": sum(p["numInputRows"] for p in measured) / busy if busy else 0.0,
        "frames": report.delivered,
        "backlog_seconds": backlog / wearers,
        "drain_seconds": drain,
        "fired_frames": len(values),
        **latency_figures(values, durations),
    }


def main(
    wearers: int = 1000,
    seconds: int = 300,
    warmup_seconds: int = 60,
    source_wearers: int = 20,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Start the services, train, generate, measure and print."""
    from anomalake.install import install
    from anomalake.stack import Kafka, Mlflow
    from spark.session import get_spark

    home = tempfile.mkdtemp(prefix="anomalake-bench-")
    os.environ["ANOMALAKE_HOME"] = home
    settings = load_settings(home=home)
    install(settings)
    broker, tracking = Kafka(settings), Mlflow(settings)
    broker.up()
    tracking.up()
    try:
        t0 = time.perf_counter()
        echo(f"model served: {train_model(settings, Path(home) / 'train')}")
        sources = source_frames(Path(home) / "sources", source_wearers, warmup_seconds + seconds)
        echo(
            f"trained and generated {source_wearers} source wearers in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        spark = get_spark(settings)
        r = capacity(spark, settings, sources, wearers, seconds, warmup_seconds)
        echo(
            f"{wearers} wearers, {seconds} s measured after a {warmup_seconds} s warm-up: "
            f"frames in {r['input_rate']:,.0f}/s, scored {r['scored_rate']:,.0f}/s while "
            f"busy; backlog when the input stopped {r['backlog_seconds']:.1f} s of input, "
            f"drained in {r['drain_seconds']:.1f} s"
        )
        echo(
            f"frame -> alert commit ({r['fired_frames']} fired frames): p50 {r['p50']:.2f}s  "
            f"p95 {r['p95']:.2f}s  p99 {r['p99']:.2f}s  max {r['max']:.2f}s; "
            f"{r['batches']} batches, median {r['batch_s_median']:.2f}s, "
            f"max {r['batch_s_max']:.2f}s"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        echo(f"driver python peak RSS {peak:.0f} MiB; cores {os.cpu_count()}")
        return r
    finally:
        tracking.down()
        broker.down()


if __name__ == "__main__":
    main()
