from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
from pyspark.sql import functions as F

from anomalake.detection.markets import MarketRuleParams
from anomalake.generators.markets import FaultRates, write_market_files
from anomalake.replay import replay_messages
from anomalake.settings import load_settings
from spark.jobs.markets_batch import (
    fired,
    gaps,
    recompute_rules,
    reconcile,
    records_as_kafka_rows,
    silver_bars,
)
from spark.streams.speed import decode_and_validate
from tests.spark.streams.reference import reference_anomalies


def _silver(spark, data: Path):  # type: ignore[no-untyped-def]
    raw = records_as_kafka_rows(spark, list(replay_messages(data)))
    return silver_bars(decode_and_validate(raw, load_settings().markets)).cache()


def test_batch_recomputation_uses_the_stream_rules_and_matches_the_reference(
    spark,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    data = tmp_path / "bars"
    write_market_files(
        data, 3, date(2026, 4, 6), 2, seed=21, faults=FaultRates(0.01, 0.01, 0.01, 0.01)
    )
    silver = _silver(spark, data)
    assert silver.count() == silver.select("symbol", "minute").distinct().count()
    got = {
        (r["symbol"], r["minute"], r["rules"])
        for r in fired(recompute_rules(silver, MarketRuleParams())).collect()
    }
    expected = {(r.symbol, r.minute, r.rules) for r in reference_anomalies(data).itertuples()}
    assert len(expected) > 20
    assert got == expected


def test_gaps_cover_every_dropped_minute_inside_a_session(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "bars"
    write_market_files(data, 2, date(2026, 4, 6), 1, seed=4, faults=FaultRates(0.0, 0.0, 0.0, 0.03))
    found = gaps(_silver(spark, data)).collect()
    assert found and all(g["missing_minutes"] >= 1 for g in found)
    dropped = pd.read_csv(data / "faults.csv")
    dropped = dropped[dropped["fault"] == "gap"]
    for row in dropped.itertuples():
        t = pd.Timestamp(row.timestamp).tz_convert("UTC").tz_localize(None)
        if t.strftime("%H:%M") in ("03:45", "09:59"):  # session edges are not gaps
            continue
        assert any(
            g["symbol"] == row.symbol and g["last_bar_before"] < t < g["first_bar_after"]
            for g in found
        ), row


def _fired(spark, rows: list[tuple[str, str, str]]):  # type: ignore[no-untyped-def]
    """Fired bars as :func:`spark.jobs.markets_batch.fired` gives them (stream or batch)."""
    return (
        spark.createDataFrame(rows, "symbol string, event_time string, rules string")
        .withColumn("event_time", F.to_timestamp("event_time"))
        .withColumn("minute", (F.unix_timestamp("event_time") / 60).cast("long"))
    )


def test_reconcile_counts_matches_misses_and_additions(spark) -> None:  # type: ignore[no-untyped-def]
    t0 = "2026-04-06 04:00:00"
    stream = _fired(spark, [("A", t0, "A1"), ("A", "2026-04-06 04:01:00", "A2")])
    batch = _fired(spark, [("A", t0, "A1"), ("A", "2026-04-06 04:02:00", "A1")])
    (row,) = reconcile(stream, batch).collect()
    assert (row["matched"], row["missed_by_stream"], row["added_by_stream"]) == (1, 1, 1)


def test_differences_between_stream_and_batch_come_with_a_reason(spark) -> None:  # type: ignore[no-untyped-def]
    from spark.jobs.markets_batch import explain_differences

    def at(hhmm: str) -> str:
        return f"2026-04-06 04:{hhmm}:00"

    stream = _fired(spark, [("A", at("00"), "A1"), ("A", at("01"), "A2")])
    batch = _fired(
        spark,
        [
            ("A", at("00"), "A1"),
            ("A", at("02"), "A1"),
            ("A", at("05"), "A2"),
            ("A", at("09"), "A1"),
        ],
    )
    quarantine = spark.createDataFrame(
        [
            ("A", at("02"), "late: minute arrived after the watermark"),
            ("A", at("03"), "duplicate minute"),
        ],
        "symbol string, event_time string, reason string",
    ).withColumn("event_time", F.to_timestamp("event_time"))
    silver = batch.select("symbol", "minute")
    got = {
        (r["event_time"].strftime("%M"), r["kind"], r["reason"])
        for r in explain_differences(stream, batch, quarantine, silver, 10).collect()
    }
    earlier = "the stream quarantined an earlier bar in the window: duplicate minute"
    assert got == {
        ("01", "added_by_stream", "the bar is not in silver"),
        (
            "02",
            "missed_by_stream",
            "the stream quarantined this bar: late: minute arrived after the watermark",
        ),
        ("05", "missed_by_stream", earlier),
        ("09", "missed_by_stream", earlier),
    }
