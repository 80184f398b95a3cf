"""The hosts speed layer scores with the registry champion and follows it without a restart."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from anomalake.settings import Settings
from tests.spark.topics import wait_until

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _events(tmp_path: Path, name: str, rows: int, seed: int) -> list[tuple[str, bytes]]:
    from anomalake.generators.hosts import write_host_files
    from anomalake.replay import host_messages

    folder = tmp_path / name
    write_host_files(folder, rows, seed=seed, activities=("process",))
    (csv_file,) = folder.glob("*.csv")
    csv_file.rename(folder / f"{name}.csv")
    return list(host_messages(folder, "process"))


def test_stream_scores_with_the_champion_and_follows_it_without_restart(  # type: ignore[no-untyped-def]
    spark, kafka: Settings, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from pyspark.sql import functions as F

    from anomalake.generators.hosts import write_host_files
    from anomalake.producer import produce
    from anomalake.stack import Mlflow
    from ml.hosts_pipeline import retrain_toniot
    from ml.registry import CHAMPION
    from spark.streams.speed import start

    s = kafka.model_copy(
        update={
            "home": tmp_path / "home",
            "mlflow": kafka.mlflow.model_copy(update={"port": _free_port()}),
            "hosts": kafka.hosts.model_copy(
                update={"model_refresh_seconds": 1.0, "trigger_seconds": 0.5}
            ),
        }
    )
    h = s.hosts
    server = Mlflow(s)  # its own server: this test stops it mid-run
    server.up()
    query = None
    try:
        write_host_files(tmp_path / "train", 1500, seed=1, activities=("process",))
        first = retrain_toniot(s, tmp_path / "train", "process", figures=False)
        name = first["model_name"]
        assert first["decision"]["promoted"] is True

        topic = h.activity_topic("process")
        bad = [
            ("web-1", b"not json"),
            ("web-1", json.dumps({"v": 1, "host": "web-1", "ts": "soon"}).encode()),
        ]
        produce(s.kafka, topic, [*_events(tmp_path, "web-1", 150, 5), *bad])
        query = start(spark, s, "hosts", "process")
        read = lambda table: spark.read.format("delta").load(s.table_path(table))  # noqa: E731

        def scored_rows() -> int:
            """all 150 valid events scored"""
            return read(h.scored_table("process")).count() == 150

        wait_until(scored_rows)
        scored = read(h.scored_table("process"))
        assert {
            tuple(r) for r in scored.select("model_name", "model_version").distinct().collect()
        } == {(name, first["version"])}
        reasons = sorted(r["reason"] for r in read(h.quarantine_table).collect())
        assert reasons[0] == "malformed JSON: not an object"
        assert "ts 'soon' is not Unix seconds" in reasons[1] and len(reasons) == 2

        def counted() -> tuple[int, int] | None:
            """the window counts merged for all 150 events"""
            sums = read(h.activity_counts_table("process")).agg(F.sum("events"), F.sum("anomalies"))
            row = tuple(sums.first())
            return row if row[0] == 150 else None

        assert wait_until(counted) == (150, scored.where("prediction").count())

        # predicted attacks are detections of the one alert lifecycle: one alert per host
        # and rule, recorded (origin replay: nobody is told) with every detection folded in
        attacks = scored.where("prediction").count()
        assert attacks > 0, "the generated events hold attacks the champion finds"

        def alerted() -> list:  # type: ignore[type-arg]
            """the attacks folded into alerts"""
            from delta.tables import DeltaTable

            if not DeltaTable.isDeltaTable(spark, s.table_path(h.alerts_table)):
                return []
            rows = read(h.alerts_table).collect()
            return rows if sum(r["detections"] for r in rows) == attacks else []

        alerts = wait_until(alerted)
        assert [(r["use_case"], r["entity"], r["rule"]) for r in alerts] == [
            ("hosts", "web-1", "process_attack")
        ]
        assert alerts[0]["origin"] == "replay" and alerts[0]["status"] == "open"

        # A promotion (the alias moves to a new version): the running query switches.
        second = retrain_toniot(s, tmp_path / "train", "process", seed=2, figures=False)
        client = MlflowClient(tracking_uri=s.mlflow.uri, registry_uri=s.mlflow.uri)
        client.set_registered_model_alias(name, CHAMPION, second["version"])
        time.sleep(2.5)  # longer than the refresh period
        produce(s.kafka, topic, _events(tmp_path, "db-1", 60, 6))

        def second_version() -> int:
            """60 events scored by the new champion"""
            rows = read(h.scored_table("process")).where(F.col("host") == "db-1")
            return rows.where(F.col("model_version") == second["version"]).count() == 60

        wait_until(second_version)

        # A backtest re-scores stored events with today's champion through the same code.
        from spark.jobs.hosts_backtest import backtest
        from spark.tables import Days

        stored = read(h.scored_table("process"))
        dates = [r[0] for r in stored.select(F.to_date("ts")).distinct().collect()]
        result = backtest(spark, s, "process", Days(min(dates), max(dates)))
        assert result["rows"] == 210 and result["model_versions"] == [second["version"]]
        same_model = read(h.backtest_table("process")).where(F.col("host") == "db-1")
        assert same_model.count() == 60
        assert same_model.where(F.col("prediction") != F.col("stream_prediction")).count() == 0

        # The tracking server goes away: scoring continues with the model in memory.
        server.down()
        time.sleep(2.5)
        produce(s.kafka, topic, _events(tmp_path, "cache-1", 40, 7))

        def kept_scoring() -> int:
            """40 events scored after the server stopped"""
            rows = read(h.scored_table("process")).where(F.col("host") == "cache-1")
            return rows.where(F.col("model_version") == second["version"]).count() == 40

        wait_until(kept_scoring)
        assert query.isActive and query.exception() is None
        assert read(h.scored_table("process")).count() == 250
    finally:
        if query is not None:
            query.stop()
        server.down()


def test_kill_9_neither_loses_nor_duplicates_events_or_detections(  # type: ignore[no-untyped-def]
    spark, kafka: Settings, mlflow_server: str, tmp_path: Path
) -> None:
    """SIGKILL ``anomalake stream hosts`` twice mid-stream, then let it finish.

    Every event lands once (scored or quarantined), and every predicted attack is folded
    into the alert lifecycle exactly once: the alerts' detections equal the predictions.
    """
    import os
    import uuid

    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from anomalake.generators.hosts import write_host_files
    from anomalake.producer import produce
    from ml.hosts_pipeline import retrain_toniot
    from tests.spark.streams.crash import kill_repeatedly, run_to_completion
    from tests.spark.topics import new_topic

    name = f"hosts_{uuid.uuid4().hex[:6]}"
    topic = f"{name}.process"
    new_topic(kafka, topic)
    write_host_files(tmp_path / "train", 1500, seed=1, activities=("process",))
    # a champion to score with (promoted now, or already there from another test)
    retrain_toniot(kafka, tmp_path / "train", "process", figures=False)
    bad = [("web-1", b"not json"), ("db-1", b'{"v": 1, "host": "db-1", "ts": "soon"}')]
    messages = [
        *_events(tmp_path, "web-1", 300, 5),
        *bad,
        *_events(tmp_path, "db-1", 300, 6),
        *_events(tmp_path, "cache-1", 300, 7),
    ]
    report = produce(kafka.kafka, topic, messages)
    assert report.failed == 0
    tables = {
        "bronze": f"{name}_scored_{{stream}}",
        "quarantine": f"{name}_quarantine",
        "alerts": f"{name}_alerts",
        "counts": f"{name}_counts_{{stream}}",
        "query": f"{name}_{{stream}}",
    }
    env = {
        **os.environ,
        "ANOMALAKE_HOSTS__TOPIC": f"{name}.{{stream}}",
        "ANOMALAKE_HOSTS__BRONZE_TABLE": tables["bronze"],
        "ANOMALAKE_HOSTS__QUARANTINE_TABLE": tables["quarantine"],
        "ANOMALAKE_HOSTS__ALERTS_TABLE": tables["alerts"],
        "ANOMALAKE_HOSTS__COUNTS_TABLE": tables["counts"],
        "ANOMALAKE_HOSTS__QUERY_NAME": tables["query"],
        "ANOMALAKE_HOSTS__MAX_OFFSETS_PER_TRIGGER": "100",
        "ANOMALAKE_HOSTS__TRIGGER_SECONDS": "0.5",
        "ANOMALAKE_SPARK__DRIVER_MEMORY": "1g",
    }
    scored_table = kafka.table_path(tables["bronze"].format(stream="process"))
    quarantine_table = kafka.table_path(tables["quarantine"])
    alerts_table = kafka.table_path(tables["alerts"])

    def read(path: str):  # type: ignore[no-untyped-def]
        return spark.read.format("delta").load(path)

    def landed() -> int:
        paths = (scored_table, quarantine_table)
        if not all(DeltaTable.isDeltaTable(spark, p) for p in paths):
            return 0
        return sum(read(p).count() for p in paths)

    def folded() -> int:
        if not DeltaTable.isDeltaTable(spark, alerts_table):
            return -1
        return int(read(alerts_table).agg(F.sum("detections")).first()[0] or 0)

    def predicted() -> int:
        return int(read(scored_table).where("prediction").count())

    log = tmp_path / "stream.log"
    args = ["stream", "hosts", "--stream", "process"]
    checkpoint = Path(kafka.checkpoint_path(tables["query"].format(stream="process")))
    kills = kill_repeatedly(args, env, checkpoint, log, kills=2, seed=20261207)
    run_to_completion(
        args, env, log, lambda: landed() >= report.delivered and folded() == predicted()
    )

    scored, quarantine = read(scored_table), read(quarantine_table)
    coords = scored.select("topic", "partition", "offset").unionByName(
        quarantine.select("topic", "partition", "offset")
    )
    assert coords.count() == coords.distinct().count() == report.delivered, json.dumps(kills)
    assert quarantine.count() == 2
    assert scored.where(F.col("model_version").isNull()).count() == 0
    assert folded() == predicted(), json.dumps(kills)
    counts = read(kafka.table_path(tables["counts"].format(stream="process")))
    assert counts.agg(F.sum("events")).first()[0] == 900
