"""What a streaming query's sink holds (a Kafka producer, threads), released when it stops.

A ``foreachBatch`` sink that keeps a producer or a thread pool between batches outlives
its query unless something closes them: in a process that starts and stops queries (a
test suite, a benchmark, a notebook) the producer keeps reconnecting to a broker long
gone. :func:`release_on_stop` closes them once the query terminates, however it ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql.streaming import StreamingQueryListener

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSink:
    """A ``foreachBatch`` function and what releases the resources it holds."""

    write: Callable[[DataFrame, int], None]
    release: Callable[[], None]


class _ReleaseOnTermination(StreamingQueryListener):
    """Calls ``release`` once, when the query ``query_id`` terminates, then unregisters."""

    def __init__(self, spark: SparkSession, query_id: str, release: Callable[[], None]) -> None:
        self._spark = spark
        self._query_id = query_id
        self._release = release
        self._lock = threading.Lock()
        self._released = False

    def release_once(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        try:
            self._release()
        except Exception:  # a sink's cleanup must not break the listener bus
            log.exception("releasing the sink of query %s failed", self._query_id)
        # not from the listener bus's own thread: removing there would wait on itself
        threading.Thread(target=self._unregister, daemon=True).start()

    def _unregister(self) -> None:
        try:
            self._spark.streams.removeListener(self)
        except Exception:  # the session may be stopping too
            log.debug("could not remove the listener of query %s", self._query_id)

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 - Spark's interface
        return

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802
        return

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
        if str(event.id) == self._query_id:
            self.release_once()


def release_on_stop(
    spark: SparkSession, query: StreamingQuery, release: Callable[[], None]
) -> None:
    """Call ``release`` once ``query`` terminates: stopped, failed or finished.

    Called on Spark's listener thread; a query already stopped is released at once.
    """
    listener = _ReleaseOnTermination(spark, str(query.id), release)
    spark.streams.addListener(listener)
    if not query.isActive:
        listener.release_once()
