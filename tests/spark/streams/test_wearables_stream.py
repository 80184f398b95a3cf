"""The wearables speed layer scores E4 frames with the champion as offline evaluation does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from anomalake.settings import Settings
from tests.spark.topics import wait_until

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def test_stream_equals_offline_evaluation_on_the_same_frames(  # type: ignore[no-untyped-def]
    spark, kafka: Settings, mlflow_server: str, tmp_path: Path
) -> None:
    from anomalake.generators.wearables import write_wearables_files, write_wearer
    from anomalake.producer import produce
    from anomalake.replay import wearables_messages
    from anomalake.speed.wearables import COLUMNS, WearablesStep, score_messages
    from ml.serving import ChampionScorer
    from ml.wearables import train_and_register
    from spark.streams.speed import start
    from tests.spark.topics import isolated

    s = isolated(kafka, "wearables", tmp_path, "wearables", max_offsets_per_trigger=400)
    w = s.wearables
    write_wearables_files(tmp_path / "train", 3, 2.0, seed=11, episodes_per_hour=1.5)
    trained = train_and_register(s, tmp_path / "train")
    assert trained["metrics"]["windows"] > 100

    schedule = [("tachycardia_at_rest", 960, 1260), ("off_wrist", 1380, 1560)]
    folder, _, _ = write_wearer(tmp_path / "e4", "W7", START, 1680, 5, schedule=schedule)
    frames = list(wearables_messages(folder))
    bad = [("W7", b"not json"), ("W8", frames[5][1])]  # W7's frame under another key
    produce(s.kafka, w.topic, [*frames, *bad])
    query = start(spark, s, "wearables")
    read = lambda table: spark.read.format("delta").load(s.table_path(table))  # noqa: E731
    try:

        def landed() -> bool:
            """every frame in bronze or quarantine"""
            return read(w.bronze_table).count() + read(w.quarantine_table).count() == len(
                frames
            ) + len(bad)

        wait_until(landed)
        bronze = read(w.bronze_table).toPandas().sort_values("offset", ignore_index=True)
        reasons = sorted(r["reason"] for r in read(w.quarantine_table).collect())
        assert reasons[0] == "device 'W7' differs from the record key 'W8'"
        assert reasons[1] == "malformed JSON" and len(reasons) == 2

        # the same frames through the same step offline, with the same champion
        champion = ChampionScorer.of_spec(s, w)
        offline = score_messages(frames, WearablesStep.from_settings(s, None, champion))
        assert len(bronze) == len(offline) == len(frames)
        compared = [c for c in COLUMNS if c not in ("event_time", "reason", "raw_value")]
        compared = [c for c in compared if c not in ("topic", "partition", "offset", "key")]
        compared.remove("kafka_timestamp")
        for column in compared:
            left, right = bronze[column].tolist(), offline[column].tolist()
            for a, b in zip(left, right, strict=True):
                if isinstance(b, float) or isinstance(a, float):
                    assert (pd.isna(a) and pd.isna(b)) or a == pytest.approx(b, rel=1e-12)
                elif isinstance(b, list) or hasattr(a, "tolist"):
                    assert list(a if a is not None else []) == list(b or []), column
                else:
                    assert (pd.isna(a) and pd.isna(b)) or a == b, (column, a, b)
        ends = bronze[bronze["window_end"]]
        assert len(ends) > 100 and (ends["device_state"] == "off_wrist").sum() > 5
        assert ends["model_version"].dropna().nunique() == 1

        # the lifecycle: one alert per device and rule that fired, every detection folded in
        fired = ends.explode("rules").dropna(subset=["rules"])
        expected = fired.groupby("rules").size().to_dict()
        assert "device_off_wrist" in expected

        def alerted() -> dict[str, int]:
            """every fired rule folded into its alert"""
            from delta.tables import DeltaTable

            if not DeltaTable.isDeltaTable(spark, s.table_path(w.alerts_table)):
                return {}
            rows = read(w.alerts_table).collect()
            got = {r["rule"]: r["detections"] for r in rows}
            return got if got == expected else {}

        wait_until(alerted)
        alerts = read(w.alerts_table).collect()
        assert {r["entity"] for r in alerts} == {"W7"}
        off = next(r for r in alerts if r["rule"] == "device_off_wrist")
        assert off["severity"] == "low" and off["origin"] == "replay"
        assert query.isActive and query.exception() is None
    finally:
        query.stop()
