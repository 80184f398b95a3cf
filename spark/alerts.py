"""The alert lifecycle of a Spark stream: a micro-batch's detections -> the alerts table.

A speed layer's ``foreachBatch`` sink hands :class:`Lifecycle` the batch's detections
(``DETECTIONS``). They are aggregated per entity, rule and origin in Spark (one job over
the cached batch); the small result is folded into the current alerts of those entities
and rules and the changed rows are merged into the alerts table by
:func:`anomalake.alerts.store.apply_detections`, without a Spark job (the table is small:
one row per alert). Each changed row carries ``last_batch = "<query>:<query id>:<batch
id>"``: a batch replayed after a crash finds its tag and changes nothing.

People acknowledge and resolve alerts through :class:`anomalake.alerts.store.AlertStore`
(the ``anomalake alerts`` command), which needs no Spark session either.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType

from anomalake.alerts.store import AlertStore, CurrentAlerts, apply_detections
from anomalake.errors import AnomalakeError
from anomalake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from anomalake.producer import Publisher
    from anomalake.usecases.spec import AlertPolicy

log = logging.getLogger(__name__)

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
Row = dict[str, Any]


def collect_groups(detections: DataFrame) -> list[Row]:
    """One row per (entity, rule, origin): count, first/last event time (µs), max score.

    ``details`` is the first detection's (by event time, then details). Rows without an
    entity, rule or event time are dropped; a missing or NaN score counts as 0; a missing
    origin is ``live``. The detections come to the driver through Arrow (one Spark job
    over the sink's cached batch, no shuffle) and are grouped there with pandas: a Spark
    aggregation's shuffle cost more than the whole fold (docs/benchmarks.md).
    """
    score = F.nanvl(F.coalesce(F.col("score"), F.lit(0.0)), F.lit(0.0))
    frame = (
        detections.where(
            F.col("entity").isNotNull()
            & F.col("rule").isNotNull()
            & F.col("event_time").isNotNull()
        )
        .select(
            "entity",
            "rule",
            F.coalesce(F.col("origin"), F.lit("live")).alias("origin"),
            score.alias("score"),
            F.unix_micros("event_time").alias("us"),
            "details",
        )
        .toArrow()
        .to_pandas()
    )
    if frame.empty:
        return []
    frame = frame.sort_values(["us", "details"], kind="stable", na_position="first")
    groups = frame.groupby(["entity", "rule", "origin"], sort=True).agg(
        count=("us", "size"),
        first_us=("us", "min"),
        last_us=("us", "max"),
        score=("score", "max"),
        details=("details", lambda d: d.iloc[0]),
    )
    return [
        {
            "entity": g["entity"],
            "rule": g["rule"],
            "origin": g["origin"],
            "count": int(g["count"]),
            "first_us": int(g["first_us"]),
            "last_us": int(g["last_us"]),
            "score": float(g["score"]),
            "details": g["details"],
        }
        for g in groups.reset_index().to_dict("records")
    ]


#: The outbox channel the alerts topic is fed from.
TOPIC_CHANNEL = "alerts_topic"


class Lifecycle:
    """A stream's alert lifecycle: detections -> alerts table -> outbox -> topic and people.

    Every use case's sink takes it: a micro-batch's detections
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
        policy: AlertPolicy | None = None,
    ) -> None:
        """``policy``: the use case's channels and contacts (every channel if None)."""
        from anomalake.alerts.delivery import Outbox, People

        self.settings, self.table, self.use_case = settings, table, use_case
        self.people = People(settings, policy)
        self.channels = self.people.channels
        self.outbox = Outbox.from_settings(settings)
        self.store = AlertStore(settings.table_path(table))
        self.current = CurrentAlerts()
        self._publisher: Publisher | None = None  # made at the first send, kept

    def _queue(self, alerts: list[dict[str, Any]]) -> None:
        from anomalake.alerts.delivery import queue_notifications

        self.outbox.put_many(TOPIC_CHANNEL, [(f"change:{a['last_batch']}", a) for a in alerts])
        if self.channels:
            queue_notifications(self.outbox, self.channels, alerts, route=self.people.route)

    def _publish(self, alerts: list[dict[str, Any]]) -> None:
        from anomalake.producer import Publisher

        if self._publisher is None:
            self._publisher = Publisher(self.settings.kafka)
        publish_alerts(self.settings, alerts, self._publisher)

    def close(self) -> None:
        """Close the alerts topic's producer, if one was made."""
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    def query_tag(self, spark: SparkSession, query: str) -> str:
        """``query`` with the running streaming query's id (call on the batch's thread).

        The alerts table remembers applied batches by (query id, batch id): the id is kept
        in the checkpoint, so a new checkpoint (batch ids from 0) is a new query.
        """
        from spark.tables import stream_query_id

        query_id = stream_query_id(spark)
        return f"{query}:{query_id}" if query_id else query

    def apply(self, groups: list[Row], batch_id: int, query: str) -> list[dict[str, Any]]:
        """Fold one micro-batch's aggregated detections in; returns the alerts changed.

        Queues them for the topic and people before the commit; :meth:`drain` sends them.
        """
        a = self.settings.alerts
        return apply_detections(
            self.store,
            use_case=self.use_case,
            groups=groups,
            tag=f"{query}:{batch_id}",
            suppress_seconds=a.suppress_seconds,
            cuts=a.severity_cuts,
            before_commit=self._queue,
            current=self.current,
        )

    def drain(self) -> None:
        """Send what is queued for the alerts topic (a replayed batch queued nothing)."""
        self.outbox.drain_batch(TOPIC_CHANNEL, self._publish)

    def record(self, detections: DataFrame, batch_id: int, query: str) -> list[dict[str, Any]]:
        """Apply one micro-batch's detections and send the changes; returns them."""
        spark = detections.sparkSession
        changed = self.apply(collect_groups(detections), batch_id, self.query_tag(spark, query))
        self.drain()
        return changed


# --- the alerts topic ------------------------------------------------------------------
def publish_alerts(
    settings: Settings, alerts: list[dict[str, Any]], publisher: Publisher | None = None
) -> None:
    """Send changed alerts to the alerts topic keyed by ``alert_id``.

    The payload is :func:`anomalake.alerts.payload.payload` (``"v": 2``; its JSON Schema is
    ``docs/alert-payload.schema.json``). Waits for every delivery; raises
    :class:`AnomalakeError` if any failed. At least once: consumers deduplicate on the key
    and ``updated_at``.
    """
    from anomalake.alerts.payload import encode

    publish(settings, [(str(a["alert_id"]), encode(a)) for a in alerts], publisher)


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
