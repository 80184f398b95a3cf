"""Delta tables at the jobs' edge: reading by name and replacing whole days, idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from anomalake.errors import AnomalakeError
from anomalake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


@dataclass(frozen=True)
class Days:
    """An inclusive range of dates: one logical date for a DAG run, a year for a backfill."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"empty date range: {self.first} .. {self.last}")

    @classmethod
    def one(cls, day: date) -> Days:
        """The range holding only ``day``."""
        return cls(day, day)

    def widened(self, days_before: int) -> Days:
        """The same range starting ``days_before`` calendar days earlier."""
        return Days(self.first - timedelta(days=days_before), self.last)

    def contains(self, column: str | Column) -> Column:
        """Predicate: ``column`` falls in the range."""
        col = F.col(column) if isinstance(column, str) else column
        return col.between(F.lit(self.first), F.lit(self.last))

    def sql(self, column: str) -> str:
        """The same predicate as SQL text (for Delta's ``replaceWhere``)."""
        first, last = self.first.isoformat(), self.last.isoformat()
        return f"{column} >= DATE'{first}' AND {column} <= DATE'{last}'"

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}..{self.last}"


def read_table(spark: SparkSession, settings: Settings, name: str) -> DataFrame:
    """The Delta table called ``name``."""
    return spark.read.format("delta").load(settings.table_path(name))


def read_table_or_empty(
    spark: SparkSession, settings: Settings, name: str, schema: str
) -> DataFrame:
    """The table, or no rows of ``schema`` when it was never written (e.g. no stream ran)."""
    from delta.tables import DeltaTable

    if DeltaTable.isDeltaTable(spark, settings.table_path(name)):
        return read_table(spark, settings, name)
    return spark.createDataFrame([], schema)


def replace_days(df: DataFrame, path: str, days: Days, column: str = "trade_date") -> int:
    """Write ``df`` as the ``days`` partitions (by ``column``) of the Delta table at ``path``.

    Only those partitions are replaced — rows of other days are untouched, and a day with
    no rows in ``df`` ends up empty — so re-runs and backfills give identical tables.
    Returns the rows now in those partitions.
    """
    (
        df.write.format("delta")
        .mode("overwrite")
        .partitionBy(column)
        .option("replaceWhere", days.sql(column))
        .save(path)
    )
    written = df.sparkSession.read.format("delta").load(path)
    return int(written.where(days.contains(column)).count())


BATCH_ID = "batch_id"
BATCH_TIME = "batch_time"


def with_batch_columns(df: DataFrame, batch_id: int, at: datetime) -> DataFrame:
    """``df`` with its micro-batch's id and time as the columns ``batch_id``, ``batch_time``.

    They come from a one-row relation joined by broadcast, not from literals: Spark writes
    a long or timestamp literal (``lit(batch_id)``, ``current_timestamp()``) into the Java
    code it generates, so per-batch literals make every micro-batch compile new classes for
    the JIT to compile again (docs/benchmarks.md); a relation's rows are data.
    """
    if at.tzinfo is None:
        raise ValueError(f"batch time without a time zone: {at}")
    stamp = at.astimezone(UTC).isoformat(sep=" ")
    values = f"VALUES ({int(batch_id)}L, TIMESTAMP'{stamp}') AS t({BATCH_ID}, {BATCH_TIME})"
    one_row = df.sparkSession.sql(f"SELECT * FROM {values}")
    return df.crossJoin(F.broadcast(one_row))


def batch_time(df: DataFrame) -> Column:
    """The time of ``df``'s micro-batch (:func:`with_batch_columns`); now if it has none."""
    return F.col(BATCH_TIME) if BATCH_TIME in df.columns else F.current_timestamp()


BATCH_MARK = "#"
QUERY_ID_PROPERTY = "sql.streaming.queryId"  # Spark's local property inside a micro-batch


def batch_mark(app_id: str, batch_id: int) -> str:
    """The user metadata a micro-batch's commit carries: ``app_id#batch_id``."""
    return f"{app_id}{BATCH_MARK}{batch_id}"


def stream_app_id(spark: SparkSession, name: str) -> str:
    """``name@<query id>`` inside a streaming query's micro-batch (``name`` outside one).

    The query id is kept in the checkpoint: a restart keeps it, a new checkpoint (batch
    ids from 0 again) gets a new one, so its batches are never taken for the old ones.
    """
    query_id = stream_query_id(spark)
    return f"{name}@{query_id}" if query_id else name


def stream_query_id(spark: SparkSession) -> str | None:
    """The id of the streaming query whose micro-batch is running (None outside one)."""
    query_id = spark.sparkContext.getLocalProperty(QUERY_ID_PROPERTY)
    return query_id or None


def last_batch_written(
    spark: SparkSession, path: str, app_id: str, first_window: int = 100
) -> int | None:
    """The highest batch id ``app_id`` committed to the Delta table at ``path`` (None if none).

    Reads commit metadata only (no data files), newest first in growing windows: an app's
    marks increase with the version, so the first window that holds one has the highest.
    """
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return None
    prefix = f"{app_id}{BATCH_MARK}"
    table = DeltaTable.forPath(spark, path)
    limit = first_window
    while True:
        history = table.history(limit).select("userMetadata").cache()
        try:
            mark = (
                history.where(F.col("userMetadata").startswith(prefix))
                .select(F.max(F.substring_index("userMetadata", BATCH_MARK, -1).cast("long")))
                .first()
            )
            if mark is not None and mark[0] is not None:
                return int(mark[0])
            if history.count() < limit:  # the whole history was read
                return None
        finally:
            history.unpersist()
        limit *= 10


class BatchAppender:
    """Appends one streaming query run's micro-batches to Delta tables exactly once.

    Every commit carries :func:`batch_mark` as its user metadata (``app_id`` from
    :func:`stream_app_id`). After a crash Spark re-runs the last planned batch with the
    same id, so only the first batch a run writes to a table can be a replay: for that one
    the table's history is read, and a batch already committed is skipped; later batches
    of the run append directly. The same guarantee as Delta's ``txnAppId``/``txnVersion``
    for this single-writer-per-app case, without their cost: they read the table's
    transaction state on every commit (0.6 s per append against 0.2 s, docs/benchmarks.md).
    Create one per query start, so a restarted query checks again.
    """

    def __init__(self) -> None:
        self._checked: set[str] = set()

    def append(
        self,
        df: DataFrame,
        path: str,
        app_id: str,
        batch_id: int,
        partition: str | None,
        coalesce: bool = True,
    ) -> bool:
        """Append ``df`` as ``app_id``'s batch ``batch_id``; False if it was already there.

        ``coalesce`` writes one file (per table partition) instead of one per ``df``
        partition; leave it off when ``df`` is still to be computed, or one task does it.
        """
        if path not in self._checked:
            done = last_batch_written(df.sparkSession, path, app_id)
            if done is not None and done > batch_id:
                raise AnomalakeError(
                    f"{path} holds batch {done} of {app_id}, ahead of batch {batch_id}",
                    "the query's checkpoint is older than its table: restore the checkpoint "
                    "that wrote the table, or start a new checkpoint",
                )
            self._checked.add(path)
            if done == batch_id:
                return False
        writer = (
            (df.coalesce(1) if coalesce else df)
            .write.format("delta")
            .mode("append")
            .option("userMetadata", batch_mark(app_id, batch_id))
        )
        if partition:
            writer = writer.partitionBy(partition)
        writer.save(path)
        return True


STREAM_TABLE_PROPERTIES = {"delta.checkpointInterval": "100"}
"""A streaming sink commits every second or two; Delta's default checkpoint every 10 commits
then stalls one batch in ten by seconds (the checkpoint is written inside the commit)."""


def create_if_missing(frame: DataFrame, path: str, partition: str | None = None) -> None:
    """Create a streaming sink's Delta table at ``path`` (``frame``'s schema, no rows).

    Nothing happens if the table exists. A new table gets :data:`STREAM_TABLE_PROPERTIES`
    in its first commit (an existing one keeps its own: ``ALTER TABLE ... SET
    TBLPROPERTIES`` while no stream writes it).
    """
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(frame.sparkSession, path):
        writer = frame.limit(0).write.format("delta").mode("append")
        writer = writer.options(**STREAM_TABLE_PROPERTIES)
        (writer.partitionBy(partition) if partition else writer).save(path)
