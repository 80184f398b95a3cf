"""The infra speed layer against a real broker: stream = backfill = offline replay, alerts."""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path

import pytest

from anomalake.generators.infra import write_infra_files
from anomalake.producer import produce
from anomalake.replay import infra_messages
from anomalake.settings import SKAB_SENSORS, Settings
from tests.servers import Receiver
from tests.spark.topics import isolated_infra

#: Posts the webhook refuses before it answers.
OUTAGE = 2

pytestmark = pytest.mark.integration


def _live_overheating(asset: str) -> list[tuple[str, bytes]]:
    values = dict.fromkeys(SKAB_SENSORS, 1.0) | {"Temperature": 95.0}
    return [
        (
            asset,
            json.dumps(
                {
                    "v": 1,
                    "asset": asset,
                    "origin": "live",
                    "timestamp": f"2026-03-09 12:00:{second:02d}",
                    **values,
                }
            ).encode(),
        )
        for second in range(3)
    ]


def test_stream_scores_like_backfill_and_replay_and_keeps_one_alert_per_rule(  # type: ignore[no-untyped-def]
    spark, kafka: Settings, tmp_path: Path, receiver: str
) -> None:
    from anomalake.alerts.delivery import DeliveryWorker, Outbox, channels_from_settings
    from anomalake.speed.infra import load_config, score_messages
    from spark.jobs.infra_backfill import backfill
    from spark.streams.speed import start
    from spark.tables import Days

    Receiver.fail_next = OUTAGE  # the webhook refuses the first posts
    s = isolated_infra(kafka, tmp_path, receiver)
    i = s.infra
    data = tmp_path / "sensors"
    counts = write_infra_files(data, assets=3, hours=0.5, seed=11, bad_rows=True, faults_per_hour=6)
    messages = list(infra_messages(data))
    extra = [("pump01", b"x" * 5000), ("pump02", b"[1, 2]")]
    report = produce(s.kafka, i.topic, [*messages, *extra])
    assert report.failed == 0
    worker = DeliveryWorker(Outbox.from_settings(s), channels_from_settings(s), 0.2)
    worker.start()
    query = start(spark, s, "infra")

    def landed() -> int:
        from delta.tables import DeltaTable

        if not DeltaTable.isDeltaTable(spark, s.table_path(i.quarantine_table)):
            return 0
        return sum(
            spark.read.format("delta").load(s.table_path(t)).count()
            for t in (i.bronze_table, i.quarantine_table)
        )

    try:
        deadline = time.monotonic() + 300
        while landed() < report.delivered and time.monotonic() < deadline:
            assert query.exception() is None, query.exception()
            time.sleep(2)
        # live readings of a fourth asset fire the YAML rule three times: one alert, one POST
        produce(s.kafka, i.topic, _live_overheating("pump09"))
        deadline = time.monotonic() + 120
        while not Receiver.received and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2)
    finally:
        query.stop()
        worker.stop()

    bronze = spark.read.format("delta").load(s.table_path(i.bronze_table))
    quarantine = spark.read.format("delta").load(s.table_path(i.quarantine_table))
    coords = bronze.select("topic", "partition", "offset").unionByName(
        quarantine.select("topic", "partition", "offset")
    )
    assert coords.count() == coords.distinct().count() == report.delivered + 3
    reasons = [r["reason"] for r in quarantine.collect()]
    assert len(reasons) == counts["bad_rows"] + 2  # the generator's and the two extra records
    assert any(r.startswith("oversized") for r in reasons)
    assert any(r.startswith("out of order") for r in reasons)

    # the same step offline, on the producer's messages: identical scores, bit for bit
    offline = score_messages(messages, s, load_config(s))
    offline = offline[offline["reason"].isna()]
    stream = bronze.where("asset != 'pump09'").toPandas()
    key = ["asset", "event_time"]
    got = stream.sort_values(key).reset_index(drop=True)
    want = offline.sort_values(key).reset_index(drop=True)
    assert len(got) == len(want) > 5000
    assert got["score"].tolist() == want["score"].tolist()
    assert got["anomaly"].tolist() == want["anomaly"].tolist()
    assert [dict(m) for m in got["scores"]] == want["scores"].tolist()
    assert got["anomaly"].sum() > 0

    # a backfill over the stored readings: the same scores, marked backfill
    result = backfill(spark, s, Days(date(2026, 3, 9), date(2026, 3, 9)))
    assert result["differ_from_stream"] == 0 and result["anomalies"] == int(got["anomaly"].sum())
    assert result["refused"] == 0  # every stored reading taken again by the same step
    refilled = spark.read.format("delta").load(s.table_path(i.backfill_table))
    assert {r["origin"] for r in refilled.select("origin").distinct().collect()} == {"backfill"}
    refilled_scores = (
        refilled.where("asset != 'pump09'").select(*key, "score").toPandas().sort_values(key)
    )
    assert refilled_scores["score"].tolist() == got["score"].tolist()

    alerts = spark.read.format("delta").load(s.table_path(i.alerts_table)).toPandas()
    open_alerts = alerts[alerts["status"] == "open"]
    assert not open_alerts.duplicated(["entity", "rule"]).any(), "one open alert per rule"
    replayed = alerts[alerts["entity"] != "pump09"]
    assert len(replayed) > 0 and set(replayed["origin"]) == {"replay"}
    assert replayed["detections"].sum() > len(replayed), "detections fold into open alerts"
    live = alerts[alerts["entity"] == "pump09"]
    assert live["rule"].tolist() == ["overheating"] and live["detections"].tolist() == [3]
    assert live["severity"].tolist() == ["high"], "the rule's declared severity"
    # only the live alert reached people, once, after the webhook's outage; replayed
    # anomalies never do
    assert Receiver.fail_next == 0, "the outage was lived through"
    assert [(a["entity"], a["rule"]) for a in Receiver.received] == [("pump09", "overheating")]


def test_kill_9_and_restart_neither_loses_nor_duplicates(  # type: ignore[no-untyped-def]
    spark, kafka: Settings, tmp_path: Path
) -> None:
    """SIGKILL the job three times mid-stream: every reading lands once, scored as offline.

    The detectors' state, the idempotent appends and the alerts MERGE (skipped for a batch
    already applied) are all exercised: the scores after the kills equal an uninterrupted
    offline run bit for bit, and every detection is folded into the alerts exactly once.
    """
    from pyspark.sql import functions as F

    from anomalake.speed.infra import InfraStep, load_config, score_messages
    from spark.streams.speed import detections
    from tests.spark.streams.crash import kill_repeatedly, run_to_completion

    s = isolated_infra(kafka, tmp_path, webhook="")
    s = s.model_copy(update={"home": kafka.home, "alerts": kafka.alerts})  # the job's own
    i = s.infra
    data = tmp_path / "sensors"
    write_infra_files(data, assets=3, hours=0.5, seed=7, bad_rows=True, faults_per_hour=6)
    messages = list(infra_messages(data))
    report = produce(s.kafka, i.topic, messages)
    assert report.failed == 0
    env = {
        **os.environ,
        "ANOMALAKE_INFRA__TOPIC": i.topic,
        "ANOMALAKE_INFRA__QUERY_NAME": i.query_name,
        "ANOMALAKE_INFRA__BRONZE_TABLE": i.bronze_table,
        "ANOMALAKE_INFRA__QUARANTINE_TABLE": i.quarantine_table,
        "ANOMALAKE_INFRA__ALERTS_TABLE": i.alerts_table,
        "ANOMALAKE_INFRA__MAX_OFFSETS_PER_TRIGGER": "500",
        "ANOMALAKE_INFRA__TRIGGER_SECONDS": "0.5",
        "ANOMALAKE_SPARK__DRIVER_MEMORY": "1g",
    }

    def table(name: str):  # type: ignore[no-untyped-def]
        return spark.read.format("delta").load(s.table_path(name))

    def landed() -> int:
        from delta.tables import DeltaTable

        paths = [s.table_path(t) for t in (i.bronze_table, i.quarantine_table)]
        if not all(DeltaTable.isDeltaTable(spark, p) for p in paths):
            return 0
        return sum(spark.read.format("delta").load(p).count() for p in paths)

    log = tmp_path / "stream.log"
    args = ["stream", "infra"]
    checkpoint = Path(s.checkpoint_path(i.query_name))
    kills = kill_repeatedly(args, env, checkpoint, log, kills=3, seed=20261126)
    config = load_config(s)

    def expected_detections() -> int:
        found = detections(
            table(i.bronze_table).withColumn("reason", F.lit(None).cast("string")),
            InfraStep.from_settings(s),
            s.alerts.severity_cuts,
        )
        return int(found.count())

    def folded() -> int:
        from delta.tables import DeltaTable

        if not DeltaTable.isDeltaTable(spark, s.table_path(i.alerts_table)):
            return 0
        return int(table(i.alerts_table).agg(F.sum("detections")).first()[0] or 0)

    # stop once the last batch has landed and its detections are folded
    run_to_completion(
        args,
        env,
        log,
        lambda: landed() >= report.delivered and folded() == expected_detections(),
    )

    bronze, quarantine = table(i.bronze_table), table(i.quarantine_table)
    coords = bronze.select("topic", "partition", "offset").unionByName(
        quarantine.select("topic", "partition", "offset")
    )
    assert coords.count() == report.delivered, json.dumps(kills)
    assert coords.distinct().count() == report.delivered

    offline = score_messages(messages, s, config)
    offline = offline[offline["reason"].isna()]
    key = ["asset", "event_time"]
    got = bronze.toPandas().sort_values(key).reset_index(drop=True)
    want = offline.sort_values(key).reset_index(drop=True)
    assert len(got) == len(want) > 5000
    assert got["score"].tolist() == want["score"].tolist(), json.dumps(kills)
    assert got["anomaly"].tolist() == want["anomaly"].tolist()
    assert got["anomaly"].sum() > 0

    assert folded() == expected_detections() > 0, json.dumps(kills)
    alerts = table(i.alerts_table).toPandas()
    open_alerts = alerts[alerts["status"] == "open"]
    assert not open_alerts.duplicated(["entity", "rule"]).any(), "one open alert per rule"
