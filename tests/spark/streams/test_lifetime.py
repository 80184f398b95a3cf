"""A sink's resources are released once its query stops, however it stops."""

from __future__ import annotations

import time

import pytest

from spark.streams.lifetime import release_on_stop

pytestmark = pytest.mark.integration


def _wait_for(condition, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_sink_is_released_once_when_its_query_stops_or_fails(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    released: list[str] = []
    rate = spark.readStream.format("rate").option("rowsPerSecond", 20).load()
    query = rate.writeStream.format("noop").start()
    release_on_stop(spark, query, lambda: released.append("stopped"))
    _wait_for(lambda: query.lastProgress is not None)
    assert released == []  # running: nothing released
    query.stop()
    _wait_for(lambda: bool(released))
    time.sleep(0.5)
    assert released == ["stopped"]  # once

    release_on_stop(spark, query, lambda: released.append("already stopped"))
    assert released == ["stopped", "already stopped"]

    def fail(batch, batch_id: int) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("sink down")

    failing = (
        rate.writeStream.option("checkpointLocation", str(tmp_path / "cp"))
        .foreachBatch(fail)
        .start()
    )
    release_on_stop(spark, failing, lambda: released.append("failed"))
    _wait_for(lambda: "failed" in released)
    assert failing.exception() is not None
    assert released == ["stopped", "already stopped", "failed"]
