from __future__ import annotations

from pathlib import Path

import pytest

from anomalake.errors import AnomalakeError
from spark.tables import (
    STREAM_TABLE_PROPERTIES,
    BatchAppender,
    create_if_missing,
    last_batch_written,
    stream_app_id,
)


def _rows(spark, batch_id: int, n: int = 3):  # type: ignore[no-untyped-def]
    return spark.createDataFrame([(batch_id, i) for i in range(n)], "batch long, i long")


def _batches(spark, path: str) -> list[int]:  # type: ignore[no-untyped-def]
    rows = spark.read.format("delta").load(path).groupBy("batch").count().collect()
    assert all(r["count"] == 3 for r in rows), rows  # no batch written twice
    return sorted(r["batch"] for r in rows)


def test_a_replayed_batch_is_written_once_and_later_batches_append(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "t")
    run = BatchAppender()
    assert last_batch_written(spark, path, "q.t") is None  # no table yet
    for batch_id in (0, 1, 2):
        assert run.append(_rows(spark, batch_id), path, "q.t", batch_id, None)
    assert last_batch_written(spark, path, "q.t") == 2
    # A restart replays batch 2 (crash after the Delta commit, before the checkpoint's).
    restarted = BatchAppender()
    assert not restarted.append(_rows(spark, 2), path, "q.t", 2, None)
    assert restarted.append(_rows(spark, 3), path, "q.t", 3, None)
    assert _batches(spark, path) == [0, 1, 2, 3]


def test_a_replay_that_had_not_reached_the_table_writes_it(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "t")
    BatchAppender().append(_rows(spark, 0), path, "q.t", 0, None)
    # crash before batch 1 reached this table: the restarted run writes it
    assert BatchAppender().append(_rows(spark, 1), path, "q.t", 1, None)
    assert _batches(spark, path) == [0, 1]


def test_batches_of_another_query_do_not_count(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "t")
    BatchAppender().append(_rows(spark, 5), path, "other.t", 5, None)
    assert last_batch_written(spark, path, "q.t") is None
    assert last_batch_written(spark, path, "other.t") == 5
    # "q.t" must not match "q.t2" either
    BatchAppender().append(_rows(spark, 7), path, "q.t2", 7, None)
    assert last_batch_written(spark, path, "q.t") is None
    assert BatchAppender().append(_rows(spark, 1), path, "q.t", 1, None)
    assert _batches(spark, path) == [1, 5, 7]


def test_a_sink_table_is_created_once_with_the_stream_properties(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "t")
    create_if_missing(_rows(spark, 0), path)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    assert len(history) == 1  # the properties are in the table's first commit
    props = {
        r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()
    }
    assert {k: props.get(k) for k in STREAM_TABLE_PROPERTIES} == STREAM_TABLE_PROPERTIES
    assert spark.read.format("delta").load(path).count() == 0
    BatchAppender().append(_rows(spark, 0), path, "q.t", 0, None)
    create_if_missing(_rows(spark, 9), path)  # exists: untouched
    assert _batches(spark, path) == [0]


def test_the_history_is_searched_past_other_apps_commits(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "t")
    BatchAppender().append(_rows(spark, 4), path, "q.t", 4, None)
    other = BatchAppender()
    for batch_id in range(5):  # five newer commits by another query on the same table
        other.append(_rows(spark, 10 + batch_id), path, "other.t", batch_id, None)
    assert last_batch_written(spark, path, "q.t", first_window=2) == 4
    assert last_batch_written(spark, path, "none", first_window=2) is None


def test_a_table_ahead_of_the_checkpoint_is_an_error(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "t")
    BatchAppender().append(_rows(spark, 9), path, "q.t", 9, None)
    with pytest.raises(AnomalakeError, match="ahead of batch 3"):
        BatchAppender().append(_rows(spark, 3), path, "q.t", 3, None)


def test_outside_a_stream_the_app_id_is_the_name(spark) -> None:  # type: ignore[no-untyped-def]
    assert stream_app_id(spark, "q") == "q"


def test_an_empty_part_commits_nothing(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # the sinks append every part of a batch; Delta records no commit for an empty append
    path = str(tmp_path / "t")
    create_if_missing(_rows(spark, 0), path, partition="batch")
    for coalesce in (True, False):
        BatchAppender().append(_rows(spark, 1, n=0), path, "q.t", 1, "batch", coalesce=coalesce)
    assert [r["version"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()] == [0]


def test_batch_columns_carry_id_and_time_without_new_code_per_batch(spark) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from pyspark.sql import functions as F

    from spark.tables import batch_time, with_batch_columns

    rows = spark.range(10).select((F.col("id") % 3).alias("k"))
    codegen = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics
    at = datetime(2026, 1, 5, 9, 15, 0, 123456, tzinfo=UTC)

    def batch(batch_id: int) -> list[tuple[int, int, datetime]]:
        stamped = with_batch_columns(rows.where("k > 0"), batch_id, at + timedelta(batch_id))
        out = stamped.select("k", "batch_id", batch_time(stamped).alias("t")).collect()
        return [(r["k"], r["batch_id"], r["t"].astimezone(UTC)) for r in out]

    assert batch(1) == [(k, 1, at + timedelta(1)) for k in (1, 2, 1, 2, 1, 2)]
    compiled = codegen.METRIC_COMPILATION_TIME().getCount()
    assert {r[1:] for r in batch(2)} == {(2, at + timedelta(2))}
    assert codegen.METRIC_COMPILATION_TIME().getCount() == compiled  # the same code
    with pytest.raises(ValueError, match="time zone"):
        with_batch_columns(rows, 3, datetime(2026, 1, 5))
