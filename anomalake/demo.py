"""``anomalake demo``: the main job on embedded defaults, end to end on the real stack.

generate minute bars -> produce them to Kafka (keyed by symbol) -> a Spark Structured
Streaming query lands them in the ``bronze_markets`` Delta table -> print what landed
and where to look.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date

from anomalake import stack
from anomalake.errors import AnomalakeError
from anomalake.generators.markets import generate_bars, symbol_names
from anomalake.install import install
from anomalake.producer import encode, produce
from anomalake.settings import Settings

BRONZE_TABLE = "bronze_markets"
LANDING_QUERY = "land_markets"


def bar_records(n_events: int, n_symbols: int, seed: int = 7) -> Iterator[tuple[str, bytes]]:
    """(symbol, JSON bar) pairs: ``n_events`` bars spread over ``n_symbols`` symbols."""
    per_symbol = -(-n_events // n_symbols)
    days = -(-per_symbol // 375)
    emitted = 0
    frames = [
        generate_bars(s, date(2026, 1, 5), days, seed=seed).head(per_symbol)
        for s in symbol_names(n_symbols)
    ]
    for minute in range(per_symbol):
        for frame in frames:
            if emitted == n_events:
                return
            row = frame.iloc[minute]
            yield (
                row["symbol"],
                encode(
                    {
                        "symbol": row["symbol"],
                        "timestamp": row["timestamp"].isoformat(),
                        "open": float(row["open"]),
                        "high": float(row["high"]),
                        "low": float(row["low"]),
                        "close": float(row["close"]),
                        "volume": int(row["volume"]),
                    }
                ),
            )
            emitted += 1


def run_demo(
    settings: Settings, n_events: int, n_symbols: int, echo: Callable[[str], None] = print
) -> int:
    """Run the demo; returns the number of rows the Delta table holds."""
    from spark.ingest import kafka_stream, land_to_delta, parse_json_events
    from spark.schemas import MARKET_BAR
    from spark.session import get_spark

    install(settings)
    stack.up(settings, echo=echo)
    topic = settings.kafka.markets_topic
    started = time.monotonic()
    report = produce(settings.kafka, topic, bar_records(n_events, n_symbols))
    if report.failed:
        raise AnomalakeError(
            f"{report.failed} of {report.sent} records not delivered: {report.errors[:2]}",
            "check `anomalake status` and the Kafka log",
        )
    echo(
        f"produced {report.delivered} bars for {n_symbols} symbols to '{topic}' "
        f"in {time.monotonic() - started:.1f}s"
    )
    spark = get_spark(settings)
    events = parse_json_events(kafka_stream(spark, settings, topic), MARKET_BAR)
    query = land_to_delta(events, settings, BRONZE_TABLE, LANDING_QUERY, available_now=True)
    query.awaitTermination()
    table = spark.read.format("delta").load(settings.table_path(BRONZE_TABLE))
    rows = table.count()
    echo(f"Delta table {BRONZE_TABLE}: {rows} rows at {settings.table_path(BRONZE_TABLE)}")
    table.groupBy("symbol").count().orderBy("symbol").show(n_symbols, truncate=False)
    echo(f"checkpoint: {settings.checkpoint_path(LANDING_QUERY)}")
    for st in stack.status(settings):
        echo(f"{st.name:8} {'healthy' if st.healthy else 'DOWN':8} {st.url}")
    echo("stop everything with: make down")
    return rows
