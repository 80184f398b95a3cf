"""The alert lifecycle in Delta: detections of a micro-batch -> one alert row per episode.

A speed layer's ``foreachBatch`` sink hands :class:`Lifecycle` the batch's detections
(``DETECTIONS``). They are aggregated per entity, rule and origin in Spark; the small
result is folded on the driver into the current alerts of those entities and rules (kept
there between batches: :class:`CurrentAlerts`) with
:func:`anomalake.alerts.lifecycle.fold` (the same code as the in-memory book), and the
changed rows are MERGEd into the alerts table by ``alert_id``. Each changed row carries
``last_batch = "<query>:<batch_id>"``: a batch replayed after a crash finds its tag and
changes nothing. Use a ``query`` that names the checkpoint: batch ids restart at 0 with a
new checkpoint.

People acknowledge and resolve alerts (:func:`acknowledge`, :func:`resolve`, the
``anomalake alerts`` command) with Delta UPDATEs, which may race the stream's MERGE; both
retry Delta's concurrent-modification conflicts, and the MERGE only ever sets the columns
detections drive, so it never undoes an acknowledgement made while it ran.

Timestamps cross between Spark and Python as epoch microseconds, so no time zone of the
Python process is involved.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from anomalake.alerts.lifecycle import STATUSES, Alert, Detection, fold, next_status
from anomalake.errors import AnomalakeError
from anomalake.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from anomalake.producer import Publisher

log = logging.getLogger(__name__)
T = TypeVar("T")

DETECTIONS = StructType(
    [
        StructField("entity", StringType()),
        StructField("rule", StringType()),
        StructField("score", DoubleType()),
        StructField("event_time", TimestampType()),
        StructField("origin", StringType()),
        StructField("details", StringType()),
    ]
)
ALERTS = StructType(
    [
        StructField("alert_id", StringType(), False),
        StructField("use_case", StringType()),
        StructField("entity", StringType()),
        StructField("rule", StringType()),
        StructField("severity", StringType()),
        StructField("max_score", DoubleType()),
        StructField("status", StringType()),
        StructField("origin", StringType()),
        StructField("detections", LongType()),
        StructField("first_event_time", TimestampType()),
        StructField("last_event_time", TimestampType()),
        StructField("opened_at", TimestampType()),
        StructField("updated_at", TimestampType()),
        StructField("acknowledged_at", TimestampType()),
        StructField("acknowledged_by", StringType()),
        StructField("resolved_at", TimestampType()),
        StructField("resolved_by", StringType()),
        StructField("note", StringType()),
        StructField("details", StringType()),
        StructField("last_batch", StringType()),
    ]
)
COLUMNS = tuple(ALERTS.fieldNames())
TIME_COLUMNS = frozenset(f.name for f in ALERTS.fields if isinstance(f.dataType, TimestampType))
# What the stream's MERGE updates in an existing row; status and the rest belong to people.
STREAM_COLUMNS = (
    "severity",
    "max_score",
    "origin",
    "detections",
    "first_event_time",
    "last_event_time",
    "updated_at",
    "last_batch",
)
CONFLICT_NAMES = (
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentWriteException",
    "ConcurrentTransactionException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "DeltaConcurrentModificationException",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Row = dict[str, Any]


# --- time at the edge ------------------------------------------------------------------
def to_micros(moment: datetime) -> int:
    """Epoch microseconds of ``moment`` (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int | None) -> datetime | None:
    """The UTC datetime of epoch microseconds (None stays None)."""
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def _micros_columns(df: DataFrame) -> DataFrame:
    return df.select(
        *(F.unix_micros(c).alias(c) if c in TIME_COLUMNS else F.col(c) for c in COLUMNS)
    )


def _collect(df: DataFrame) -> list[Row]:
    return [row.asDict() for row in _micros_columns(df).collect()]


def _frame(spark: SparkSession, rows: list[Row]) -> DataFrame:
    schema = StructType(
        [StructField(f.name, LongType()) if f.name in TIME_COLUMNS else f for f in ALERTS.fields]
    )
    frame = spark.createDataFrame([tuple(r[c] for c in COLUMNS) for r in rows], schema)
    return frame.select(
        *(F.timestamp_micros(c).alias(c) if c in TIME_COLUMNS else F.col(c) for c in COLUMNS)
    )


def public(row: Row) -> dict[str, Any]:
    """An alert row (times in microseconds) as people and consumers see it (UTC datetimes)."""
    return {k: from_micros(v) if k in TIME_COLUMNS else v for k, v in row.items()}


# --- the table -------------------------------------------------------------------------
def ensure_alerts_table(spark: SparkSession, settings: Settings, table: str) -> str:
    """Create the alerts table empty if it does not exist; returns its path."""
    from delta.tables import DeltaTable

    path = settings.table_path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        try:
            spark.createDataFrame([], ALERTS).write.format("delta").mode("append").save(path)
        except Exception as exc:
            if not (is_conflict(exc) and DeltaTable.isDeltaTable(spark, path)):
                raise  # else someone else created it at the same moment
    return path


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is one of Delta's concurrent-modification conflicts (retryable)."""
    from delta import exceptions

    classes = tuple(getattr(exceptions, name) for name in CONFLICT_NAMES)
    if isinstance(exc, classes):
        return True
    text = str(exc)[:2000]  # a conflict wrapped in another error keeps the Java class name
    return any(f"io.delta.exceptions.{name}" in text for name in CONFLICT_NAMES)


def retry_conflicts(action: Callable[[], T], what: str, attempts: int = 5) -> T:
    """Run ``action`` again (all of it: read and write) after a Delta commit conflict.

    Waits 0.2 s, 0.4 s, ... (at most 5 s, with jitter) between attempts.
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if not is_conflict(exc):
                raise
            if attempt == attempts:
                raise AnomalakeError(
                    f"{what}: the alerts table changed under it {attempts} times in a row",
                    "try again; if it persists, look for a job rewriting the table",
                ) from exc
            delay = min(0.2 * 2 ** (attempt - 1), 5.0) * (1 + random.random())
            log.info("%s: Delta conflict (%s), retry %d in %.2f s", what, exc, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


# --- the lifecycle on rows -------------------------------------------------------------
def aggregate_detections(detections: DataFrame) -> DataFrame:
    """One row per (entity, rule, origin): count, first/last event time (µs), max score.

    ``details`` is the first detection's. Rows without an entity, rule or event time are
    dropped; a missing or NaN score counts as 0.
    """
    score = F.nanvl(F.coalesce(F.col("score"), F.lit(0.0)), F.lit(0.0))
    return (
        detections.where(
            F.col("entity").isNotNull()
            & F.col("rule").isNotNull()
            & F.col("event_time").isNotNull()
        )
        .groupBy("entity", "rule", F.coalesce(F.col("origin"), F.lit("live")).alias("origin"))
        .agg(
            F.count(F.lit(1)).alias("count"),
            F.unix_micros(F.min("event_time")).alias("first_us"),
            F.unix_micros(F.max("event_time")).alias("last_us"),
            F.max(score).alias("score"),
            F.min_by("details", F.struct("event_time", "details")).alias("details"),
        )
    )


def _alert(row: Row) -> Alert:
    return Alert(
        alert_id=row["alert_id"],
        entity=row["entity"],
        rule=row["rule"],
        severity=row["severity"],
        first_seen=row["first_event_time"],
        last_seen=row["last_event_time"],
        count=row["detections"],
        status=row["status"],
        resolved_at=row["resolved_at"],
        origin=row["origin"],
        max_score=row["max_score"],
    )


def _current(rows: list[Row]) -> dict[tuple[str, str], Row]:
    """The alert detections fold into, per entity and rule: unresolved first, else latest."""
    current: dict[tuple[str, str], Row] = {}
    for row in sorted(
        rows, key=lambda r: (r["status"] != "resolved", r["resolved_at"] or 0, r["alert_id"])
    ):
        current[(row["entity"], row["rule"])] = row
    return current


def plan_changes(
    current_rows: list[Row],
    groups: list[Row],
    *,
    use_case: str,
    suppress_seconds: float,
    cuts: tuple[float, float, float],
    now_us: int,
    tag: str,
) -> list[Row]:
    """Fold aggregated detections into the current alert rows (pure: no Spark).

    ``groups`` are rows of :func:`aggregate_detections`; times are epoch microseconds.
    Returns each changed or new alert row once, in its final state, with ``notify`` and
    ``event`` (``opened`` wins over an escalation in the same batch).
    """
    current = _current(current_rows)
    changed: dict[str, Row] = {}
    events: dict[str, str] = {}
    suppress_us = int(suppress_seconds * 1_000_000)
    for g in sorted(groups, key=lambda g: (g["entity"], g["rule"], g["first_us"], g["origin"])):
        key = (g["entity"], g["rule"])
        before = current.get(key)
        detection = Detection(
            g["entity"], g["rule"], g["score"], g["first_us"], g["last_us"], g["count"], g["origin"]
        )
        alert, event = fold(
            _alert(before) if before else None,
            detection,
            suppress=suppress_us,
            cuts=cuts,
            use_case=use_case,
            now=now_us,
        )
        if before is not None and before["alert_id"] == alert.alert_id:
            row = dict(before)
        else:
            row = {c: None for c in COLUMNS} | {
                "alert_id": alert.alert_id,
                "use_case": use_case,
                "entity": alert.entity,
                "rule": alert.rule,
                "status": alert.status,
                "opened_at": now_us,
                "details": g["details"],
            }
        row |= {
            "severity": alert.severity,
            "max_score": alert.max_score,
            "origin": alert.origin,
            "detections": alert.count,
            "first_event_time": alert.first_seen,
            "last_event_time": alert.last_seen,
            "updated_at": now_us,
            "last_batch": tag,
        }
        current[key] = changed[alert.alert_id] = row
        if event is not None and events.get(alert.alert_id) != "opened":
            events[alert.alert_id] = event
    return [
        row | {"notify": aid in events, "event": events.get(aid)} for aid, row in changed.items()
    ]


def collect_groups(detections: DataFrame) -> list[Row]:
    """The rows of :func:`aggregate_detections` on the driver (one Spark job)."""
    return [row.asDict() for row in aggregate_detections(detections).collect()]


class CurrentAlerts:
    """The alerts a stream's detections fold into, kept on the driver between micro-batches.

    Per (entity, rule) the alert a detection folds into (:func:`_current`). They are read
    once, at the first batch a query run applies — the only batch that can be a replay —
    and then kept up to date with the rows the stream itself commits. Anyone else's commit
    to the table (people acknowledging or resolving, another stream on the same table) is
    noticed in the Delta log before each batch — a file-existence probe, no Spark job — and
    the rows are read again. Resolved alerts past the suppression window are dropped.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] | None = None
        self.version = -1  # the table version ``rows`` reflect
        self.applied: set[str] = set()  # batch tags committed since the rows were read

    def _latest(self, spark: SparkSession, path: str, known: int) -> int:
        """The table's latest version, probing the Delta log upwards from ``known``."""
        jvm = spark._jvm
        if jvm is None:  # pragma: no cover - a Spark Connect session has no JVM here
            return known + 1  # always read again
        hadoop_path = jvm.org.apache.hadoop.fs.Path
        log_dir = hadoop_path(f"{path}/_delta_log")
        fs = log_dir.getFileSystem(spark._jsc.hadoopConfiguration())
        version = known
        while fs.exists(hadoop_path(log_dir, f"{version + 1:020d}.json")):
            version += 1
        return version

    def fresh(self, spark: SparkSession, path: str, use_case: str, tag: str, since_us: int) -> bool:
        """Bring the rows up to date; False if the batch ``tag`` is already applied."""
        if self.rows is not None and self._latest(spark, path, self.version) == self.version:
            return tag not in self.applied
        from delta.tables import DeltaTable

        version = DeltaTable.forPath(spark, path).history(1).select("version").first()
        self.version = -1 if version is None else int(version[0])
        rows = _collect(
            spark.read.format("delta")
            .option("versionAsOf", self.version)
            .load(path)
            .where(
                (F.col("last_batch") == tag)
                | (
                    (F.col("use_case") == use_case)
                    & (
                        (F.col("status") != "resolved")
                        | (F.unix_micros("resolved_at") > F.lit(since_us))
                    )
                )
            )
        )
        self.rows, self.applied = _current(rows), set()
        return not any(row["last_batch"] == tag for row in rows)

    def of(self, keys: Collection[tuple[str, str]]) -> list[Row]:
        """The current rows of ``keys`` (after :meth:`fresh`)."""
        rows = self.rows or {}
        return [rows[k] for k in keys if k in rows]

    def committed(
        self, spark: SparkSession, path: str, before: int, changes: list[Row], since_us: int
    ) -> None:
        """Take in the rows the stream committed on top of version ``before``."""
        if self.rows is None:
            return
        if self._latest(spark, path, before) != before + 1:
            self.rows = None  # someone else committed too: read again next time
            return
        self.version = before + 1
        for row in changes:
            self.rows[(row["entity"], row["rule"])] = {c: row[c] for c in COLUMNS}
            self.applied.add(row["last_batch"])
        expired = [
            key
            for key, row in self.rows.items()
            if row["status"] == "resolved" and (row["resolved_at"] or 0) <= since_us
        ]
        for key in expired:
            del self.rows[key]


def apply_detections(
    spark: SparkSession,
    settings: Settings,
    *,
    table: str,
    use_case: str,
    groups: list[Row],
    batch_id: int,
    query: str,
    now: datetime | None = None,
    before_commit: Callable[[list[dict[str, Any]]], None] | None = None,
    current: CurrentAlerts | None = None,
) -> list[dict[str, Any]]:
    """Apply a micro-batch's aggregated detections (:func:`collect_groups`) to the table, once.

    Returns the changed alerts (times as UTC datetimes) with ``notify`` — true only for a
    newly opened alert or a severity escalation, never for replays and backfills — and
    ``event`` (``opened``, ``escalated:<severity>`` or None). A (``query``, ``batch_id``)
    already applied changes nothing and returns ``[]``. ``before_commit`` is called with
    the same list just before the MERGE: queue notifications there, so a crash after the
    commit cannot lose them (the replayed batch is a no-op, and re-queuing after a crash
    before it is ignored by the outbox). ``now`` is the processing time (wall clock).
    ``current`` keeps the alerts between a stream's batches (read afresh when None).
    """
    from delta.tables import DeltaTable

    if not groups:
        return []
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    path = ensure_alerts_table(spark, settings, table)
    tag = f"{query}:{batch_id}"
    now_us = to_micros(now or datetime.now(UTC))
    a = settings.alerts
    keys = sorted({(g["entity"], g["rule"]) for g in groups})
    since_us = now_us - int(a.suppress_seconds * 1_000_000)
    alerts = current or CurrentAlerts()

    def attempt() -> list[dict[str, Any]]:
        if not alerts.fresh(spark, path, use_case, tag, since_us):
            log.info("%s: batch %s was already applied; nothing to do", table, tag)
            return []
        before = alerts.version
        lap("read")
        changes = plan_changes(
            alerts.of(keys),
            groups,
            use_case=use_case,
            suppress_seconds=a.suppress_seconds,
            cuts=a.severity_cuts,
            now_us=now_us,
            tag=tag,
        )
        result = [public(row) for row in changes]
        if before_commit is not None:
            before_commit(result)
            lap("before_commit")
        source = _frame(spark, [{c: row[c] for c in COLUMNS} for row in changes])
        (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(source.alias("s"), "t.alert_id = s.alert_id")
            .whenMatchedUpdate(set={c: f"s.{c}" for c in STREAM_COLUMNS})
            .whenNotMatchedInsertAll()
            .execute()
        )
        lap("merge")
        alerts.committed(spark, path, before, changes, since_us)
        log.info("%s batch %s: %d alerts changed, seconds %s", table, tag, len(result), timings)
        return result

    # People acknowledging many alerts in a row must not fail the stream: retry longer.
    return retry_conflicts(attempt, f"{table} batch {tag}", attempts=10)


#: The outbox channel the alerts topic is fed from.
TOPIC_CHANNEL = "alerts_topic"


class Lifecycle:
    """A stream's alert lifecycle: detections -> alerts table -> outbox -> topic and people.

    The path the infra and hosts sinks take (markets not yet: its MERGE per micro-batch
    costs more than the rest of its batch, docs/benchmarks.md): a micro-batch's detections
    (``DETECTIONS``) are folded into ``table`` once per (checkpoint, batch), against the
    current alerts kept on the driver (:class:`CurrentAlerts`). Just before that commit,
    every changed alert is queued in the durable outbox for the alerts topic (once per
    alert and batch) and, if people are to be told, for their channels; :meth:`drain`
    then publishes the topic's queue (:meth:`record` does both; the sink calls it once
    the batch's records are stored). A crash between the commit and the publication
    therefore loses nothing (the next batch drains what is queued) and a replayed batch
    queues nothing twice; the topic stays at least once only for a crash between Kafka's
    acknowledgement and the outbox marking it sent.
    """

    def __init__(
        self,
        settings: Settings,
        table: str,
        use_case: str,
        channels: Collection[str] | None = None,
    ) -> None:
        """``channels``: the people channels this use case's alerts may take (all if None)."""
        from anomalake.alerts.delivery import Outbox, channels_from_settings

        self.settings, self.table, self.use_case = settings, table, use_case
        configured = channels_from_settings(settings)
        self.channels = {
            name: channel
            for name, channel in configured.items()
            if channels is None or name in channels
        }
        self.outbox = Outbox.from_settings(settings)
        self.current = CurrentAlerts()

    def _queue(self, alerts: list[dict[str, Any]]) -> None:
        from anomalake.alerts.delivery import queue_notifications

        self.outbox.put_many(TOPIC_CHANNEL, [(f"change:{a['last_batch']}", a) for a in alerts])
        if self.channels:
            queue_notifications(self.outbox, self.channels, alerts)

    def _publish(self, alerts: list[dict[str, Any]]) -> None:
        publish_alerts(self.settings, alerts)

    def query_tag(self, spark: SparkSession, query: str) -> str:
        """``query`` with the running streaming query's id (call on the batch's thread).

        The alerts table remembers applied batches by (query id, batch id): the id is kept
        in the checkpoint, so a new checkpoint (batch ids from 0) is a new query.
        """
        from spark.tables import stream_query_id

        query_id = stream_query_id(spark)
        return f"{query}:{query_id}" if query_id else query

    def apply(
        self, spark: SparkSession, groups: list[Row], batch_id: int, query: str
    ) -> list[dict[str, Any]]:
        """Fold one micro-batch's aggregated detections in; returns the alerts changed.

        Queues them for the topic and people before the commit; :meth:`drain` sends them.
        """
        return apply_detections(
            spark,
            self.settings,
            table=self.table,
            use_case=self.use_case,
            groups=groups,
            batch_id=batch_id,
            query=query,
            before_commit=self._queue,
            current=self.current,
        )

    def drain(self) -> None:
        """Send what is queued for the alerts topic (a replayed batch queued nothing)."""
        self.outbox.drain_batch(TOPIC_CHANNEL, self._publish)

    def record(self, detections: DataFrame, batch_id: int, query: str) -> list[dict[str, Any]]:
        """Apply one micro-batch's detections and send the changes; returns them."""
        spark = detections.sparkSession
        changed = self.apply(
            spark, collect_groups(detections), batch_id, self.query_tag(spark, query)
        )
        self.drain()
        return changed


# --- people's side ---------------------------------------------------------------------
def _read(spark: SparkSession, settings: Settings, table: str) -> DataFrame | None:
    from delta.tables import DeltaTable

    path = settings.table_path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return spark.read.format("delta").load(path)


def list_alerts(
    spark: SparkSession,
    settings: Settings,
    table: str,
    status: str | None = None,
    limit: int = 50,
) -> pd.DataFrame:
    """The latest-updated alerts (all, or of one status), newest first, as pandas."""
    if status is not None and status not in STATUSES:
        raise AnomalakeError(f"unknown status {status!r}", f"use one of {', '.join(STATUSES)}")
    df = _read(spark, settings, table)
    if df is None:
        df = spark.createDataFrame([], ALERTS)
    if status is not None:
        df = df.where(F.col("status") == status)
    rows = df.orderBy(F.col("updated_at").desc(), "alert_id").limit(limit)
    import pandas as pd

    return pd.DataFrame([public(r) for r in _collect(rows)], columns=list(COLUMNS))


WRONG_STATUS_FIX = {
    ("acknowledge", "acknowledged"): "it is already acknowledged; resolve it when done",
    ("acknowledge", "resolved"): "it is resolved; a new detection opens a new alert",
    ("resolve", "resolved"): "it is already resolved; nothing to do",
}


def _act(
    spark: SparkSession,
    settings: Settings,
    table: str,
    alert_id: str,
    action: str,
    changes: dict[str, Any],
) -> dict[str, Any]:
    from delta.tables import DeltaTable

    def attempt() -> dict[str, Any]:
        df = _read(spark, settings, table)
        rows = _collect(df.where(F.col("alert_id") == alert_id)) if df is not None else []
        if not rows:
            raise AnomalakeError(
                f"no alert {alert_id!r} in {table}", "copy an id from `anomalake alerts list`"
            )
        status = rows[0]["status"]
        try:
            target = next_status(status, action)
        except ValueError as exc:
            fix = WRONG_STATUS_FIX.get((action, status), "see `anomalake alerts list`")
            raise AnomalakeError(f"alert {alert_id}: {exc}", fix) from None
        after = rows[0] | {"status": target, **changes}
        # A one-row MERGE rather than an UPDATE: it reports how many rows it changed, so a
        # status changed by someone else since the read above is noticed.
        source = _frame(spark, [after]).withColumn("_seen_status", F.lit(status))
        metrics = (
            DeltaTable.forPath(spark, settings.table_path(table))
            .alias("t")
            .merge(source.alias("s"), "t.alert_id = s.alert_id AND t.status = s._seen_status")
            .whenMatchedUpdate(set={c: f"s.{c}" for c in ("status", *changes)})
            .execute()
            .first()
        )
        if metrics is None or metrics["num_updated_rows"] != 1:
            raise AnomalakeError(
                f"alert {alert_id} changed while it was being updated (it was {status})",
                "look at it with `anomalake alerts list` and try again",
            )
        return public(after)

    return retry_conflicts(attempt, f"{action} {alert_id}")


def acknowledge(
    spark: SparkSession,
    settings: Settings,
    table: str,
    alert_id: str,
    by: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Mark an open alert acknowledged by ``by``; returns the alert afterwards."""
    at = to_micros(now or datetime.now(UTC))
    changes = {"acknowledged_at": at, "acknowledged_by": by, "updated_at": at}
    return _act(spark, settings, table, alert_id, "acknowledge", changes)


def resolve(
    spark: SparkSession,
    settings: Settings,
    table: str,
    alert_id: str,
    by: str,
    note: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Resolve an open or acknowledged alert; later detections within the window fold in."""
    at = to_micros(now or datetime.now(UTC))
    changes: dict[str, Any] = {"resolved_at": at, "resolved_by": by, "updated_at": at}
    if note is not None:
        changes["note"] = note
    return _act(spark, settings, table, alert_id, "resolve", changes)


# --- the alerts topic ------------------------------------------------------------------
def publish_alerts(settings: Settings, alerts: list[dict[str, Any]]) -> None:
    """Send changed alerts to the alerts topic keyed by ``alert_id``.

    The payload is :func:`anomalake.alerts.payload.payload` (``"v": 2``; its JSON Schema is
    ``docs/alert-payload.schema.json``). Waits for every delivery; raises
    :class:`AnomalakeError` if any failed. At least once: consumers deduplicate on the key
    and ``updated_at``.
    """
    from anomalake.alerts.payload import encode

    publish(settings, [(str(a["alert_id"]), encode(a)) for a in alerts])


def publish(
    settings: Settings, records: list[tuple[str, bytes]], publisher: Publisher | None = None
) -> None:
    """Send ``(alert_id, JSON)`` pairs to the alerts topic; raise if any is not delivered.

    A streaming sink passes its long-lived ``publisher``; otherwise a producer is made.
    """
    if not records:
        return
    from anomalake.producer import produce

    topic = settings.kafka.alerts_topic
    if publisher is None:
        report = produce(settings.kafka, topic, records)
    else:
        report = publisher.send(topic, records)
    if report.failed:
        raise AnomalakeError(
            f"{report.failed} of {report.sent} alerts not delivered to {topic}: "
            f"{'; '.join(report.errors[:3])}",
            f"check the broker at {settings.kafka.servers} (`anomalake status`)",
        )
