"""What a use case declares: its records, entities, time, order, scorer, alerts and tables.

A use case is one YAML file in this package (``markets.yaml``, ``infra.yaml``,
``hosts.yaml``), validated by :class:`UseCaseSpec` when it is read. Its settings section
(``Settings.markets``, ...) *is* that spec: the file gives the defaults, and the
environment may override any field (``ANOMALAKE_INFRA__TOPIC=...``), as for every other
setting. The code a use case brings besides (its loader, generator, replay messages and
per-entity step) is named in ``entry_points`` and looked up by the one registry of use
cases (:mod:`anomalake.usecases`), which the CLI's per-use-case verbs are generated from.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SPEC_DIR = Path(__file__).resolve().parent


class RecordLimits(BaseModel):
    """What a record may hold before it is quarantined instead of reaching an entity's state.

    Each use case has its own (``ANOMALAKE_MARKETS__LIMITS__MAX_FUTURE_SECONDS``, ...).
    """

    max_future_seconds: float = Field(
        default=86_400.0,
        description="an event time later than the record's Kafka timestamp by more than this "
        "is quarantined: one reading dated 2100 would otherwise hold its entity's "
        "event-time order (and watermark) there for good",
    )
    min_event_time: str = Field(
        default="1970-01-01T00:00:00Z", description="earliest event time accepted (ISO 8601)"
    )
    max_event_time: str = Field(
        default="2200-01-01T00:00:00Z",
        description="latest event time accepted, whatever the Kafka timestamp",
    )
    max_abs_value: float = Field(
        default=1e12, description="a measurement of larger magnitude is quarantined"
    )
    entity_pattern: str = Field(
        default=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$",
        description="an entity id (symbol, asset, host) must match this",
    )

    def event_time_bounds(self) -> tuple[float, float]:
        """The accepted event-time range in Unix seconds."""
        from datetime import datetime

        return tuple(  # type: ignore[return-value]
            datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
            for t in (self.min_event_time, self.max_event_time)
        )


class FieldSpec(BaseModel):
    """One field of a record: its type, unit, and the range it must fall in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["float", "int", "string", "timestamp"]
    unit: str | None = None
    required: bool = True
    min: float | None = Field(default=None, description="smallest value accepted")
    max: float | None = Field(default=None, description="largest value accepted")
    min_exclusive: float | None = Field(default=None, description="values must be above this")
    description: str | None = None

    @model_validator(mode="after")
    def _range_is_numeric(self) -> FieldSpec:
        bounded = (self.min, self.max, self.min_exclusive) != (None, None, None)
        if bounded and self.type not in ("float", "int"):
            raise ValueError(f"a {self.type} field has no numeric range")
        return self


class EventTime(BaseModel):
    """Which field holds the event time, and how it is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    format: Literal["iso8601", "unix_seconds"] = "iso8601"
    timezone: str = Field(
        default="UTC", description="IANA time zone of ISO 8601 times written without an offset"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            example = "an IANA name, e.g. Asia/Kolkata"
            raise ValueError(f"unknown time zone {zone!r} ({example})") from None
        return zone


class Ordering(BaseModel):
    """What an entity's records may do to event-time order.

    ``reorder``: records are held until ``lateness_seconds`` of newer event time has been
    seen, then taken in event-time order (later ones are quarantined as late);
    ``strictly_increasing``: a record not after its entity's last one is quarantined;
    ``unordered``: each record is scored on its own, in arrival order.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["reorder", "strictly_increasing", "unordered"]
    lateness_seconds: float = 0.0

    @model_validator(mode="after")
    def _lateness_only_when_reordering(self) -> Ordering:
        if self.lateness_seconds and self.policy != "reorder":
            raise ValueError("lateness_seconds applies to the reorder policy only")
        if self.lateness_seconds < 0:
            raise ValueError("lateness_seconds must not be negative")
        return self


class ModelScorer(BaseModel):
    """A registered model scoring each record (``models:/<prefix><name>@<alias>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="registered name after the environment prefix; {stream} ok")
    alias: str = "champion"
    features: str = Field(description="entry point turning typed records into model input")


class Scorer(BaseModel):
    """How an entity's records are scored: detectors and rules of the one registry, a model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detectors: str | None = Field(
        default=None,
        description="a detector-set YAML (detectors, filters, rules, combination), relative "
        "to the project root",
    )
    rules: tuple[str, ...] = Field(default=(), description="rule kinds evaluated per entity")
    model: ModelScorer | None = None

    @model_validator(mode="after")
    def _scores_something(self) -> Scorer:
        if self.detectors is None and not self.rules and self.model is None:
            raise ValueError("a scorer needs detectors, rules or a model")
        return self


class Contact(BaseModel):
    """Who is told of one entity's alerts (a wearer's caregiver): e-mail addresses, a webhook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    email: tuple[str, ...] = ()
    webhook: str | None = None


class Escalation(BaseModel):
    """What becomes of an alert nobody acknowledges.

    After ``after_seconds`` open, an alert of ``severity`` or above is sent again, marked
    escalated, to ``contact`` (the one on call), or to the configured channels without one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    after_seconds: float = Field(gt=0, description="how long an alert may stay unacknowledged")
    severity: Literal["low", "medium", "high", "critical"] = Field(
        default="critical", description="the lowest severity that escalates"
    )
    contact: Contact | None = Field(
        default=None, description="who escalations reach; the configured channels when unset"
    )


class AlertPolicy(BaseModel):
    """Who hears of an alert, and how severe it is.

    Every use case has the one lifecycle (:mod:`anomalake.alerts.lifecycle`): one open
    alert per entity and rule, escalated, acknowledged and resolved.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[Literal["topic", "webhook", "email"], ...] = Field(
        default=("topic",),
        description="where alerts go: the alerts topic always; webhook and e-mail when "
        "listed here and configured (ANOMALAKE_ALERTS__WEBHOOK_URL, __SMTP_HOST)",
    )
    notify: str = Field(default="operators", description="who the people channels reach")
    contacts: dict[str, Contact] = Field(
        default_factory=dict,
        description="entity -> its own contact: that entity's alerts reach the contact's "
        "e-mail and webhook (of the listed channels) instead of the configured ones",
    )
    escalation: Escalation | None = Field(
        default=None, description="unacknowledged alerts sent on after a while; never when unset"
    )
    severity_cuts: tuple[float, float, float] | None = Field(
        default=None, description="score cut-offs of medium, high, critical; alerts' when unset"
    )
    suppress_seconds: float | None = Field(
        default=None,
        description="detections this soon after a resolve fold into the alert; alerts' when unset",
    )

    @model_validator(mode="after")
    def _cuts_increase(self) -> AlertPolicy:
        cuts = self.severity_cuts
        if cuts is not None and not (0 <= cuts[0] < cuts[1] < cuts[2] <= 1):
            raise ValueError("severity_cuts must increase within [0, 1]")
        return self


class EntryPoints(BaseModel):
    """The code a use case brings, as ``module:attribute``; the rest is the generic layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generate: str | None = Field(default=None, description="writes files with ground truth")
    messages: str = Field(description="reads files into Kafka (key, value) messages")
    step: str = Field(
        description="the per-entity step class the generic speed layer runs "
        "(anomalake.speed.step.EntityStep, built by its from_settings)"
    )
    backtest: str | None = Field(
        default=None, description="re-scores stored records with the stream's step"
    )


class UseCaseSpec(BaseModel):
    """A use case's declaration: every use case's settings section derives from this.

    Built from ``<name>.yaml`` in this package, then from what is given (the environment):
    a field given wins over the file, one nested key at a time. A key the spec does not
    have is refused, so a setting that was renamed or removed is an error, not ignored.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    topic: str = Field(description="Kafka topic of its records; {stream} names a stream's own")
    streams: tuple[str, ...] = Field(
        default=(), description="streams of one use case that differ in layout (hosts' activities)"
    )
    entity: str = Field(description="the field naming the entity a record is about")
    entity_noun: str | None = Field(
        default=None,
        description="what an entity is to people (`generate --<noun>s N`), if not the field",
    )
    event_time: EventTime
    order: Ordering
    topic_partitions: int = Field(default=1, description="partitions `anomalake up` creates")
    schema_version: int = 1
    max_payload_bytes: int = 4096
    fields: dict[str, FieldSpec] = Field(
        default_factory=dict, description="the record's measured fields"
    )
    scorer: Scorer
    alerting: AlertPolicy = Field(default_factory=AlertPolicy)
    entry_points: EntryPoints
    bronze_table: str = Field(description="accepted, scored records; {stream} ok")
    quarantine_table: str
    alerts_table: str
    counts_table: str | None = Field(
        default=None,
        description="records, anomalies and the highest score per entity and event-time "
        "window (counts_window_minutes), kept up to date by the stream; {stream} ok",
    )
    counts_window_minutes: int = 5
    query_name: str = Field(description="the streaming query and its checkpoint; {stream} ok")
    limits: RecordLimits = Field(default_factory=RecordLimits)
    model_refresh_seconds: float = Field(
        default=30.0, description="how often the stream re-checks the model's alias"
    )
    trigger_seconds: float = Field(default=1.0, description="the stream's micro-batch interval")
    max_offsets_per_trigger: int | None = Field(
        default=50_000,
        description="records per micro-batch at most: a backlog is read in bounded batches",
    )
    state_ttl_seconds: float = Field(
        default=7 * 86_400.0,
        description="an entity silent this long (processing time) has its state dropped",
    )
    state_partitions: int | None = Field(
        default=None,
        description="partitions of the per-entity state (fixed when the checkpoint is made); "
        "default: the cores of a local master (local, local[N], local[*]), "
        "else spark.shuffle_partitions",
    )

    @model_validator(mode="before")
    @classmethod
    def _declared_defaults(cls, data: Any) -> Any:
        """The use case's YAML under what is given (a field given wins)."""
        name = getattr(cls, "USE_CASE", None)
        if name is None or not isinstance(data, dict):
            return data
        declared = read_declaration(name)
        unknown = sorted(set(declared) - set(UseCaseSpec.model_fields))
        if unknown:
            raise ValueError(f"{spec_path(name)}: unknown keys {', '.join(unknown)}")
        given = dict(data)
        if isinstance(given.get("fields"), dict):
            # the environment's keys arrive lower-cased: match them to the declared names
            names = {n.lower(): n for n in declared.get("fields", {})}
            given["fields"] = {names.get(k.lower(), k): v for k, v in given["fields"].items()}
        return _merged(declared, given)

    def topic_of(self, stream: str | None = None) -> str:
        """The topic of ``stream`` (hosts' ``hosts.process``), or the use case's one topic."""
        return self.named(self.topic, stream)

    def named(self, template: str, stream: str | None = None) -> str:
        """``template`` (a table or query name) for ``stream``: ``{stream}`` filled in."""
        if "{stream}" not in template:
            return template
        if stream not in self.streams:
            raise ValueError(f"{self.name} has streams {', '.join(self.streams)}, not {stream!r}")
        return template.format(stream=stream)

    def topics(self) -> tuple[str, ...]:
        """Every topic the use case reads."""
        if "{stream}" not in self.topic:
            return (self.topic,)
        return tuple(self.topic_of(s) for s in self.streams)


def _merged(declared: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``declared``, mapping by mapping (one nested key overrides one key)."""
    out = dict(declared)
    for key, value in given.items():
        below = out.get(key)
        both = isinstance(below, dict) and isinstance(value, dict)
        out[key] = _merged(below, value) if both else value  # type: ignore[arg-type]
    return out


def spec_path(name: str) -> Path:
    """The YAML file declaring use case ``name``."""
    return SPEC_DIR / f"{name}.yaml"


def read_declaration(name: str) -> dict[str, Any]:
    """The raw mapping of ``<name>.yaml`` (validated by whoever builds the spec)."""
    return dict(_read(name))


@lru_cache(maxsize=32)
def _read(name: str) -> dict[str, Any]:
    path = spec_path(name)
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} does not declare a use case (not a mapping)")
    if loaded.get("name") != name:
        raise ValueError(f"{path} declares {loaded.get('name')!r}, not {name!r}")
    return loaded
