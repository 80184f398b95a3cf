"""Delta tables at the jobs' edge: reading by name and replacing whole days, idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

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


def append_once(
    df: DataFrame, path: str, app_id: str, batch_id: int, partition: str | None
) -> None:
    """Append ``df`` to the Delta table at ``path`` once per (``app_id``, ``batch_id``).

    Delta's idempotent writes (``txnAppId``/``txnVersion``): a micro-batch replayed after a
    crash finds its version already committed and writes nothing.
    """
    writer = (
        df.coalesce(1)
        .write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
    )
    if partition:
        writer = writer.partitionBy(partition)
    writer.save(path)


def create_if_missing(frame: DataFrame, path: str, partition: str | None = None) -> None:
    """Create the Delta table at ``path`` with ``frame``'s schema (no rows) if there is none."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(frame.sparkSession, path):
        writer = frame.limit(0).write.format("delta").mode("append")
        (writer.partitionBy(partition) if partition else writer).save(path)
