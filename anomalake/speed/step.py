"""The contract between a use case and the one generic speed layer: its per-entity step.

The speed layer (:mod:`spark.streams.speed`) runs any use case's spec the same way:
Kafka -> decode -> per-entity state (Spark's state store) -> scores -> tables, alerts. What
differs between use cases is one :class:`EntityStep`, engine-free, that the stream calls
per entity and micro-batch from the state store, and that the batch runner (backfill,
offline replay, evaluation) calls per entity from an empty state: one step, so the same
scores everywhere.

A step says:

* which input it wants (``decoded``): the record's fields typed and validated from the
  spec by the engine (markets), or the Kafka text (``raw_value`` and the Kafka columns), to
  parse itself (infra's readings, hosts' ToN-IoT rows);
* which input column groups records per entity (``group_by``) and which output column
  names the entity (``entity``);
* its output ``columns`` (name, Spark SQL type), every record coming out once: scored,
  or with a ``reason`` (quarantine) and its ``raw_value``;
* how its output reads as detections (:class:`Detections`), for the alerts;
* what its state does when an entity falls silent (:meth:`EntityStep.on_timeout`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

#: The types a step's output columns may have (Spark SQL names) and their pandas dtypes.
PANDAS_DTYPES: dict[str, Any] = {
    "string": "object",
    "double": "float64",
    "bigint": "Int64",
    "int": "Int32",
    "boolean": "boolean",
    "timestamp": "datetime64[ns]",
    "array<double>": "object",
    "array<string>": "object",
    "map<string,double>": "object",
}
#: The Kafka columns as output columns (every row keeps where it came from).
KAFKA_OUTPUT = (
    ("key", "string"),
    ("topic", "string"),
    ("partition", "int"),
    ("offset", "bigint"),
    ("kafka_timestamp", "timestamp"),
)


@dataclass(frozen=True)
class Column:
    """One output column: its name and Spark SQL type (a key of :data:`PANDAS_DTYPES`)."""

    name: str
    type: str

    def __post_init__(self) -> None:
        if self.type not in PANDAS_DTYPES:
            raise ValueError(f"column {self.name}: unsupported type {self.type!r}")


def columns(*pairs: tuple[str, str]) -> tuple[Column, ...]:
    """Columns from (name, type) pairs."""
    return tuple(Column(n, t) for n, t in pairs)


@dataclass(frozen=True)
class Detections:
    """How a step's scored rows read as detections (rows whose ``reason`` is null).

    Attributes:
        score: the column of the record's score in [0, 1], if any.
        anomaly: a boolean column: the score crossed its threshold (rule ``anomaly_rule``).
        rules: an array column of the names of the rules that fired on the record.
        flags: rule name -> boolean column, for rules with a column each (markets' A1/A2).
        rule_severity: rule name -> severity, for a fired rule's score (its severity's
            lowest score under the alert cuts).
        details: columns kept with each detection (its JSON details).
    """

    score: str | None = None
    anomaly: str | None = None
    anomaly_rule: str = "anomaly_score"
    rules: str | None = None
    flags: Mapping[str, str] = field(default_factory=dict)
    rule_severity: Mapping[str, str] = field(default_factory=dict)
    details: tuple[str, ...] = ()


class EntityStep(ABC):
    """One use case's per-entity step (see the module's docstring)."""

    #: The output column naming the entity (``symbol``, ``asset``, ``host``).
    entity: ClassVar[str]
    #: The output column of the record's event time.
    event_time: ClassVar[str] = "event_time"
    #: The input column the stream groups records by (``key``: the Kafka key).
    group_by: ClassVar[str] = "key"
    #: True: the engine decodes and validates the spec's fields first.
    decoded: ClassVar[bool] = False
    #: False: the step keeps no state between micro-batches (it is never stored).
    stateful: ClassVar[bool] = True
    #: The ordering policies (``order.policy`` of a spec) the step implements.
    orders: ClassVar[tuple[str, ...]] = ()
    columns: tuple[Column, ...]
    detections: Detections

    @abstractmethod
    def run(
        self, stored: str | None, records: pd.DataFrame, *, keyed: bool, flush: bool = False
    ) -> tuple[str | None, pd.DataFrame]:
        """One entity's records of a micro-batch from its ``stored`` state.

        Returns the state to store (None: nothing to store) and the output frame (every
        record once, in :attr:`columns`). ``keyed`` is false for records without an
        entity; ``flush`` evaluates whatever is pending (the end of a batch run). No
        record may make it raise (:func:`anomalake.speed.guard.guarded`).
        """

    def timeout_ms(self) -> int | None:
        """After a micro-batch, how long (processing time) until :meth:`on_timeout`."""
        return None

    def on_timeout(self, stored: str | None) -> tuple[str | None, pd.DataFrame | None, int | None]:
        """An entity silent for :meth:`timeout_ms`: new state (None: drop it), output, next."""
        return None, None, None

    @property
    def names(self) -> list[str]:
        """The output column names, in order."""
        return [c.name for c in self.columns]
