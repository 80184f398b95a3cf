"""The alerts table: one row per alert, in Delta, read and written without a Spark job.

An alerts table is small (one row per alert, not per detection) and transactional: a
stream folds each micro-batch's detections into it, people acknowledge and resolve its
rows. A Spark MERGE costs two jobs and 2.5 s per batch here on an idle 2-core machine,
more than a markets micro-batch; the same MERGE through delta-rs (the ``deltalake``
package, the Delta protocol in Rust) takes 0.05 s (``docs/benchmarks.md``). So this
module is the one writer of alerts tables, and it needs no Spark session: the CLI acts
on alerts without starting a JVM, and Spark jobs read the tables as any Delta table.

Concurrent writers (the stream, people, another stream) are serialised by Delta's
optimistic concurrency: a commit that finds the table changed under it raises
:class:`deltalake.exceptions.CommitFailedError`, and :func:`retry_conflicts` runs the
whole read-and-write again. The stream only ever sets the columns detections drive
(``STREAM_COLUMNS``), people only the status and its who and when, so neither undoes the
other's update.

Times cross this module's edge as epoch microseconds (``TIME_COLUMNS``), so no time zone
of the Python process is involved; :func:`public` turns a row into UTC datetimes.
Reads go through delta-rs' own query engine (DataFusion), not a pyarrow dataset scan,
whose threads can abort the interpreter at exit (delta-io/delta-rs#2184).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pyarrow as pa

from anomalake.alerts.lifecycle import STATUSES, Alert, Detection, fold, next_status
from anomalake.errors import AnomalakeError

log = logging.getLogger(__name__)
T = TypeVar("T")
Row = dict[str, Any]

_TIME = pa.timestamp("us", tz="UTC")
#: The alerts table's columns: (name, type); ``alert_id`` is never null.
FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("alert_id", pa.string()),
    ("use_case", pa.string()),
    ("entity", pa.string()),
    ("rule", pa.string()),
    ("severity", pa.string()),
    ("max_score", pa.float64()),
    ("status", pa.string()),
    ("origin", pa.string()),
    ("detections", pa.int64()),
    ("first_event_time", _TIME),
    ("last_event_time", _TIME),
    ("opened_at", _TIME),
    ("updated_at", _TIME),
    ("acknowledged_at", _TIME),
    ("acknowledged_by", pa.string()),
    ("resolved_at", _TIME),
    ("resolved_by", pa.string()),
    ("note", pa.string()),
    ("details", pa.string()),
    ("last_batch", pa.string()),
)
SCHEMA = pa.schema([pa.field(name, kind, nullable=name != "alert_id") for name, kind in FIELDS])
COLUMNS = tuple(name for name, _ in FIELDS)
TIME_COLUMNS = frozenset(name for name, kind in FIELDS if kind == _TIME)
#: What the stream updates in an existing row; status and the rest belong to people.
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
#: The commit-info key each stream commit carries its batch tag under (``DESCRIBE HISTORY``).
BATCH_KEY = "anomalake.batch"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """Epoch microseconds of ``moment`` (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int | None) -> datetime | None:
    """The UTC datetime of epoch microseconds (None stays None)."""
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def public(row: Row) -> dict[str, Any]:
    """An alert row (times in microseconds) as people and consumers see it (UTC datetimes)."""
    return {k: from_micros(v) if k in TIME_COLUMNS else v for k, v in row.items()}


def sql_text(value: str) -> str:
    """``value`` as a SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is Delta's concurrent-modification conflict (retry the transaction)."""
    from deltalake.exceptions import CommitFailedError

    return isinstance(exc, CommitFailedError)


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


def delta_rs_uri(path: str) -> str:
    """The URI delta-rs reads for a table path of the settings (``s3a://`` is ``s3://``)."""
    return "s3://" + path.removeprefix("s3a://") if path.startswith("s3a://") else path


def arrow_rows(rows: list[Row]) -> pa.Table:
    """Alert rows (times in microseconds) as a table of :data:`SCHEMA`."""
    arrays = []
    for name, kind in FIELDS:
        values = [r.get(name) for r in rows]
        if name in TIME_COLUMNS:
            arrays.append(pa.array(values, pa.int64()).cast(kind))
        else:
            arrays.append(pa.array(values, kind))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _rows(table: pa.Table) -> list[Row]:
    columns = {
        name: (
            table.column(name).cast(pa.int64()) if name in TIME_COLUMNS else table.column(name)
        ).to_pylist()
        for name in COLUMNS
    }
    rows = zip(*columns.values(), strict=True)
    return [dict(zip(COLUMNS, values, strict=True)) for values in rows]


class AlertStore:
    """One alerts table (a Delta table at ``path``)."""

    def __init__(self, path: str, storage_options: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.uri = delta_rs_uri(path)
        self.storage_options = dict(storage_options or {})

    def _table(self, version: int | None = None) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.uri, version=version, storage_options=self.storage_options)

    def exists(self) -> bool:
        """Whether the table exists."""
        from deltalake import DeltaTable

        return bool(DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options))

    def ensure(self) -> None:
        """Create the table empty if it does not exist (safe if two processes race)."""
        from deltalake import write_deltalake

        if self.exists():
            return
        try:
            write_deltalake(
                self.uri, SCHEMA.empty_table(), mode="append", storage_options=self.storage_options
            )
        except Exception:
            if not self.exists():
                raise  # else someone else created it at the same moment

    def version(self) -> int:
        """The table's latest version (-1 if it does not exist)."""
        return int(self._table().version()) if self.exists() else -1

    def rows(self, where: str | None = None, version: int | None = None) -> list[Row]:
        """The rows matching the SQL predicate ``where`` (all if None), times in µs.

        Time columns compare as microseconds in ``where`` through
        ``arrow_cast(<column>, 'Int64')``. Empty if the table does not exist.
        """
        from deltalake import QueryBuilder

        if not self.exists():
            return []
        sql = "SELECT * FROM alerts" + (f" WHERE {where}" if where else "")
        result = QueryBuilder().register("alerts", self._table(version)).execute(sql)
        return _rows(pa.table(result.read_all()))

    def merge(self, rows: list[Row], tag: str, read_version: int | None = None) -> int:
        """Upsert ``rows`` by ``alert_id`` (an existing row gets ``STREAM_COLUMNS`` only).

        ``read_version``: the version ``rows`` were planned on; a commit by someone else
        since then is a conflict (:func:`is_conflict`), not silently merged over. The
        commit carries ``tag`` under :data:`BATCH_KEY`. Returns the new version.
        """
        from deltalake import CommitProperties

        table = self._table(read_version)
        (
            table.merge(
                arrow_rows(rows),
                "t.alert_id = s.alert_id",
                source_alias="s",
                target_alias="t",
                commit_properties=CommitProperties(custom_metadata={BATCH_KEY: tag}),
            )
            .when_matched_update(updates={c: f"s.{c}" for c in STREAM_COLUMNS})
            .when_not_matched_insert_all()
            .execute()
        )
        return int(table.version())

    def stream_commits(self) -> list[tuple[str, int]]:
        """(batch tag, commit time in epoch ms) of every commit a stream made, oldest first."""
        if not self.exists():
            return []
        history = self._table().history()
        return [(c[BATCH_KEY], int(c["timestamp"])) for c in reversed(history) if BATCH_KEY in c]

    def list(self, status: str | None = None, limit: int = 50) -> list[Row]:
        """The latest-updated alerts (all, or of one status), newest first."""
        if status is not None and status not in STATUSES:
            raise AnomalakeError(f"unknown status {status!r}", f"use one of {', '.join(STATUSES)}")
        rows = self.rows(None if status is None else f"status = {sql_text(status)}")
        rows.sort(key=lambda r: (-(r["updated_at"] or 0), r["alert_id"]))
        return rows[:limit]

    def act(self, alert_id: str, action: str, changes: dict[str, Any], name: str) -> Row:
        """Move one alert on (``acknowledge``, ``resolve``) with ``changes``; the row after.

        The update only applies if the status is still the one read, so an alert changed
        by someone else in between is noticed (a one-line error), never overwritten.
        ``name`` is the table's name, for messages.
        """

        def attempt() -> Row:
            found = self.rows(f"alert_id = {sql_text(alert_id)}")
            if not found:
                raise AnomalakeError(
                    f"no alert {alert_id!r} in {name}", "copy an id from `anomalake alerts list`"
                )
            status = found[0]["status"]
            try:
                target = next_status(status, action)
            except ValueError as exc:
                fix = WRONG_STATUS_FIX.get((action, status), "see `anomalake alerts list`")
                raise AnomalakeError(f"alert {alert_id}: {exc}", fix) from None
            after = found[0] | {"status": target, **changes}
            source = arrow_rows([after]).append_column(
                "_seen_status", pa.array([status], pa.string())
            )
            metrics = (
                self._table()
                .merge(
                    source,
                    "t.alert_id = s.alert_id AND t.status = s._seen_status",
                    source_alias="s",
                    target_alias="t",
                )
                .when_matched_update(updates={c: f"s.{c}" for c in ("status", *changes)})
                .execute()
            )
            if metrics.get("num_target_rows_updated") != 1:
                raise AnomalakeError(
                    f"alert {alert_id} changed while it was being updated (it was {status})",
                    "look at it with `anomalake alerts list` and try again",
                )
            return after

        # a stream may commit every micro-batch: give a person as many tries as it has
        return retry_conflicts(attempt, f"{action} {alert_id}", attempts=10)

    def acknowledge(
        self, alert_id: str, by: str, name: str, now: datetime | None = None
    ) -> dict[str, Any]:
        """Mark an open alert acknowledged by ``by``; returns the alert afterwards."""
        at = to_micros(now or datetime.now(UTC))
        changes = {"acknowledged_at": at, "acknowledged_by": by, "updated_at": at}
        return public(self.act(alert_id, "acknowledge", changes, name))

    def resolve(
        self,
        alert_id: str,
        by: str,
        name: str,
        note: str | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Resolve an open or acknowledged alert; later detections within the window fold in."""
        at = to_micros(now or datetime.now(UTC))
        changes: dict[str, Any] = {"resolved_at": at, "resolved_by": by, "updated_at": at}
        if note is not None:
            changes["note"] = note
        return public(self.act(alert_id, "resolve", changes, name))


WRONG_STATUS_FIX = {
    ("acknowledge", "acknowledged"): "it is already acknowledged; resolve it when done",
    ("acknowledge", "resolved"): "it is resolved; a new detection opens a new alert",
    ("resolve", "resolved"): "it is already resolved; nothing to do",
}


# --- a stream's detections folded into the table ----------------------------------------
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
    """Fold aggregated detections into the current alert rows (pure).

    ``groups`` hold one (entity, rule, origin) each: ``count``, ``first_us``, ``last_us``,
    ``score``, ``details`` (``spark.alerts.collect_groups``); times are epoch
    microseconds. Returns each changed or new alert row once, in its final state, with
    ``notify`` and ``event`` (``opened`` wins over an escalation in the same batch).
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


class CurrentAlerts:
    """The alerts a stream's detections fold into, kept in memory between micro-batches.

    Per (entity, rule) the alert a detection folds into (:func:`_current`). They are read
    once, at the first batch a query run applies — the only batch that can be a replay —
    and then kept up to date with the rows the stream itself commits. Anyone else's commit
    to the table (people acknowledging or resolving, another stream on the same table) is
    noticed by the table's version before each batch, and the rows are read again.
    Resolved alerts past the suppression window are dropped.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] | None = None
        self.version = -1  # the table version ``rows`` reflect
        self.applied: set[str] = set()  # batch tags committed since the rows were read

    def fresh(self, store: AlertStore, use_case: str, tag: str, since_us: int) -> bool:
        """Bring the rows up to date; False if the batch ``tag`` is already applied."""
        latest = store.version()
        if self.rows is not None and latest == self.version:
            return tag not in self.applied
        self.version = latest
        rows = store.rows(
            f"last_batch = {sql_text(tag)} OR (use_case = {sql_text(use_case)} AND "
            f"(status <> 'resolved' OR arrow_cast(resolved_at, 'Int64') > {int(since_us)}))",
            version=latest,
        )
        self.rows, self.applied = _current(rows), set()
        return not any(row["last_batch"] == tag for row in rows)

    def of(self, keys: Collection[tuple[str, str]]) -> list[Row]:
        """The current rows of ``keys`` (after :meth:`fresh`)."""
        rows = self.rows or {}
        return [rows[k] for k in keys if k in rows]

    def committed(self, before: int, after: int, changes: list[Row], since_us: int) -> None:
        """Take in the rows the stream committed as version ``after`` on top of ``before``."""
        if self.rows is None:
            return
        if after != before + 1:
            self.rows = None  # someone else committed too: read again next time
            return
        self.version = after
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
    store: AlertStore,
    *,
    use_case: str,
    groups: list[Row],
    tag: str,
    suppress_seconds: float,
    cuts: tuple[float, float, float],
    now: datetime | None = None,
    before_commit: Callable[[list[dict[str, Any]]], None] | None = None,
    current: CurrentAlerts | None = None,
) -> list[dict[str, Any]]:
    """Apply a micro-batch's aggregated detections (``groups``) to the table, once per ``tag``.

    ``tag`` names the batch (``<query>:<batch id>``). Returns the changed alerts (times as
    UTC datetimes) with ``notify`` — true only for a newly opened alert or a severity
    escalation, never for replays and backfills — and ``event`` (``opened``,
    ``escalated:<severity>`` or None). A tag already applied changes nothing and returns
    ``[]``. ``before_commit`` is called with the same list just before the commit: queue
    notifications there, so a crash after the commit cannot lose them (the replayed batch
    is a no-op, and re-queuing after a crash before it is ignored by the outbox). ``now``
    is the processing time (wall clock). ``current`` keeps the alerts between a stream's
    batches (read afresh when None).
    """
    if not groups:
        return []
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    store.ensure()
    now_us = to_micros(now or datetime.now(UTC))
    keys = sorted({(g["entity"], g["rule"]) for g in groups})
    since_us = now_us - int(suppress_seconds * 1_000_000)
    alerts = current or CurrentAlerts()

    def attempt() -> list[dict[str, Any]]:
        if not alerts.fresh(store, use_case, tag, since_us):
            log.info("%s: batch %s was already applied; nothing to do", store.path, tag)
            return []
        before = alerts.version
        lap("read")
        changes = plan_changes(
            alerts.of(keys),
            groups,
            use_case=use_case,
            suppress_seconds=suppress_seconds,
            cuts=cuts,
            now_us=now_us,
            tag=tag,
        )
        result = [public(row) for row in changes]
        if before_commit is not None:
            before_commit(result)
            lap("before_commit")
        after = store.merge([{c: row[c] for c in COLUMNS} for row in changes], tag, before)
        lap("merge")
        alerts.committed(before, after, changes, since_us)
        log.info("%s batch %s: %d alerts changed, s %s", store.path, tag, len(result), timings)
        return result

    # People acknowledging many alerts in a row must not fail the stream: retry longer.
    return retry_conflicts(attempt, f"{store.path} batch {tag}", attempts=10)
