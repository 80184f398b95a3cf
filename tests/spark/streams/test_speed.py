"""The generic speed layer: decode from a spec, detections of any step, a new use case."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pandas as pd
import pytest

from anomalake.detection.markets import MarketRuleParams
from anomalake.settings import load_settings
from anomalake.speed.hosts import HostsStep
from anomalake.speed.markets import MarketsStep
from anomalake.speed.step import KAFKA_OUTPUT, Detections, EntityStep, columns
from anomalake.usecases.spec import AlertPolicy, UseCaseSpec
from spark.streams.speed import decode_and_validate, detections, score_batch

KAFKA = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
NOW = datetime(2026, 3, 9, 12, 0)
CUTS = (0.9, 0.99, 0.999)

#: A use case none of the code knows: line speeds per production line, Unix-seconds times.
LINES = UseCaseSpec.model_validate(
    {
        "name": "lines",
        "topic": "lines.speed",
        "entity": "line",
        "event_time": {"field": "t", "format": "unix_seconds"},
        "order": {"policy": "strictly_increasing"},
        "fields": {
            "speed": {"type": "float", "unit": "m/s", "min": 0, "max": 40},
            "batch": {"type": "int", "required": False, "min": 1},
            "operator": {"type": "string", "required": False},
        },
        "scorer": {"rules": ["too_fast"]},
        "entry_points": {"messages": "x:y", "step": "x:y"},
        "bronze_table": "bronze_lines",
        "quarantine_table": "quarantine_lines",
        "alerts_table": "alerts_lines",
        "query_name": "lines_speed_layer",
    }
)


class TooFast(EntityStep):
    """A new use case's whole step: a line is too fast when it speeds up by more than 10 m/s."""

    entity = "line"
    group_by = "line"
    decoded = True
    orders = ("strictly_increasing",)
    columns = columns(
        ("line", "string"),
        ("event_time", "timestamp"),
        ("speed", "double"),
        ("jump", "boolean"),
        ("reason", "string"),
        ("raw_value", "string"),
        *KAFKA_OUTPUT,
    )
    detections = Detections(score=None, flags={"too_fast": "jump"}, details=("speed",))

    def run(
        self, stored: str | None, records: pd.DataFrame, *, keyed: bool, flush: bool = False
    ) -> tuple[str | None, pd.DataFrame]:
        """Each valid record against the line's last speed (the state)."""
        last = json.loads(stored) if stored else None
        rows = []
        for r in records.sort_values("offset").to_dict("records"):
            jump = None
            if r["reason"] is None and keyed:
                jump = last is not None and r["speed"] - last > 10
                last = r["speed"]
            rows.append({**r, "jump": jump})
        frame = pd.DataFrame(rows, columns=self.names)
        return json.dumps(last), frame


def _raw(spark: Any, values: list[object]) -> Any:
    rows = [
        (b"L1", v if isinstance(v, bytes) else json.dumps(v).encode(), "lines.speed", 0, i, NOW)
        for i, v in enumerate(values)
    ]
    return spark.createDataFrame(rows, KAFKA)


def test_a_new_use_case_is_a_spec_and_a_step(spark: Any) -> None:
    """Decoded from its declaration, scored per entity, detections by the generic layer."""
    t0 = 1_773_050_000  # 2026-03-09 09:53:20 UTC
    values: list[object] = [
        {"v": 1, "line": "L1", "t": t0, "speed": 3.0, "batch": 7, "operator": "ann"},
        {"v": 1, "line": "L1", "t": t0 + 1, "speed": 15.5},
        {"v": 1, "line": "L1", "t": t0 + 2, "speed": 41},
        {"v": 1, "line": "L1", "t": t0 + 3, "speed": -1},
        {"v": 1, "line": "L1", "t": t0 + 4, "speed": 5, "batch": 0},
        {"v": 1, "line": "L1", "t": "soon", "speed": 5},
        {"v": 1, "t": t0 + 5, "speed": 5},
        {"v": 1, "line": "L1", "t": t0 * 1000, "speed": 5},
        b'{"v": 1, "line": "L1", "t": 1773050010, "speed": 5, "speed": 6}',
        {"v": 1, "line": "L1", "t": t0 + 6, "speed": 4.0},
    ]
    decoded = decode_and_validate(_raw(spark, values), LINES)
    assert decoded.columns[:5] == ["line", "event_time", "speed", "batch", "operator"]
    rows = {r["offset"]: r for r in decoded.collect()}
    assert rows[0]["reason"] is None and rows[0]["batch"] == 7 and rows[0]["operator"] == "ann"
    assert rows[0]["event_time"] == datetime(2026, 3, 9, 9, 53, 20)
    assert rows[2]["reason"] == "speed must be <= 40: 41"
    assert rows[3]["reason"] == "speed must be >= 0: -1"
    assert rows[4]["reason"] == "batch must be >= 1: 0"
    assert "unparsable timestamp: 'soon'" in rows[5]["reason"]
    assert rows[6]["reason"] == "missing field line"
    assert "event time out of range" in rows[7]["reason"]  # milliseconds, not seconds
    assert rows[8]["reason"] == "duplicate field in the JSON object"
    assert rows[9]["reason"] is None

    step = TooFast()
    scored = score_batch(decoded, step)
    assert sorted(r["offset"] for r in scored.collect()) == list(range(len(values)))
    (found,) = detections(scored, step, CUTS).collect()
    assert (found["entity"], found["rule"], found["origin"]) == ("L1", "too_fast", "live")
    assert json.loads(found["details"]) == {"speed": 15.5}
    assert found["event_time"] == datetime(2026, 3, 9, 9, 53, 21)


def test_markets_rules_fire_as_detections_of_their_rule(spark: Any) -> None:
    markets = load_settings().markets
    bars = [
        {
            "v": 1,
            "symbol": "ABC",
            "timestamp": f"2026-01-05 09:{15 + m:02d}:00+05:30",
            "open": 10,
            "high": 11,
            "low": 9,
            "close": 10 + (m == 12),  # +10 % at minute 12: A1
            "volume": 1000 * (1 + 4 * (m == 14)),  # 5x at minute 14: A2
        }
        for m in range(16)
    ]
    rows = [(b"ABC", json.dumps(b).encode(), "t", 0, i, NOW) for i, b in enumerate(bars)]
    raw = spark.createDataFrame(rows, KAFKA)
    step = MarketsStep(MarketRuleParams(), flush_after_ms=0, ttl_ms=0)
    scored = score_batch(decode_and_validate(raw, markets), step)
    found = {r["event_time"].minute: r for r in detections(scored, step, CUTS).collect()}
    # 09:27 IST = 03:57 UTC jumps (A1), 09:28 falls back (A1), 09:29 trades 5x (A2)
    assert {m: r["rule"] for m, r in found.items()} == {57: "A1", 58: "A1", 59: "A2"}
    assert {r["entity"] for r in found.values()} == {"ABC"}
    assert json.loads(found[59]["details"])["volume_ratio"] == pytest.approx(5.0)
    assert json.loads(found[57]["details"])["close_change"] == pytest.approx(0.1)


def test_hosts_predictions_are_detections_of_their_activity(spark: Any) -> None:
    def model(typed: pd.DataFrame) -> pd.DataFrame:
        attack = typed["PID"] == 666
        return pd.DataFrame(
            {
                "score": attack.map({True: 0.97, False: 0.1}),
                "prediction": attack,
                "model_name": "m",
                "model_version": "4",
            },
            index=typed.index,
        )

    step = HostsStep("process", model, None)
    from anomalake.loaders.toniot import LAYOUTS

    def event(pid: int) -> bytes:
        doc = {"v": 1, "host": "db-1", "ts": 1_700_000_000 + pid, "PID": pid, "label": 0}
        return json.dumps(doc | dict.fromkeys(LAYOUTS["process"], "1")).encode()

    rows = [(b"db-1", event(p), "hosts.process", 0, i, NOW) for i, p in enumerate([1, 666, 2])]
    from spark.streams.speed import kafka_records

    scored = score_batch(kafka_records(spark.createDataFrame(rows, KAFKA)), step)
    assert scored.columns[:5] == ["host", "activity", "ts", "PID", *LAYOUTS["process"][:1]]
    (found,) = detections(scored, step, CUTS).collect()
    assert (found["entity"], found["rule"], found["score"]) == ("db-1", "process_attack", 0.97)
    assert json.loads(found["details"])["model_version"] == "4"


def test_a_spec_whose_order_its_step_does_not_implement_is_refused() -> None:
    from anomalake.errors import AnomalakeError
    from spark.streams.speed import step_for

    settings = load_settings()
    reordered = settings.infra.model_copy(
        update={"order": settings.infra.order.model_copy(update={"policy": "reorder"})}
    )
    with pytest.raises(AnomalakeError, match="declares order 'reorder'; its step InfraStep"):
        step_for(settings, reordered)
    assert step_for(settings, settings.infra).orders == ("strictly_increasing",)


def test_iso_times_without_an_offset_are_read_in_the_spec_time_zone(spark: Any) -> None:
    kolkata = LINES.model_copy(
        update={
            "event_time": LINES.event_time.model_copy(
                update={"format": "iso8601", "timezone": "Asia/Kolkata"}
            )
        }
    )
    written = ["2026-03-09 15:23:20", "2026-03-09T15:23:20+05:30", "2026-03-09T09:53:20Z"]
    values: list[object] = [{"v": 1, "line": "L1", "t": t, "speed": 1.0} for t in written]
    values.append({"v": 1, "line": "L1", "t": "2026-03-09T09:53:20-0100", "speed": 1.0})
    utc = {
        r["offset"]: r["event_time"]
        for r in decode_and_validate(_raw(spark, values), kolkata).collect()
    }
    # the session's times are UTC: 15:23:20 in Kolkata (+05:30) is 09:53:20 UTC
    assert [utc[i] for i in range(3)] == [datetime(2026, 3, 9, 9, 53, 20)] * 3
    assert utc[3] == datetime(2026, 3, 9, 10, 53, 20)
    in_utc = decode_and_validate(
        _raw(spark, values[:1]),
        LINES.model_copy(
            update={"event_time": LINES.event_time.model_copy(update={"format": "iso8601"})}
        ),
    )
    assert in_utc.first()["event_time"] == datetime(2026, 3, 9, 15, 23, 20)


def test_a_time_zone_a_self_parsing_step_cannot_honour_is_refused() -> None:
    from anomalake.errors import AnomalakeError
    from spark.streams.speed import step_for

    settings = load_settings()
    paris = settings.infra.model_copy(
        update={
            "event_time": settings.infra.event_time.model_copy(update={"timezone": "Europe/Paris"})
        }
    )
    with pytest.raises(AnomalakeError, match="timezone 'Europe/Paris'; its step InfraStep"):
        step_for(settings, paris)


def test_the_spec_model_alias_is_the_one_the_step_scores_with() -> None:
    from ml.serving import champion
    from spark.streams.speed import step_for

    settings = load_settings()
    hosts = settings.hosts
    declared = hosts.scorer.model
    assert declared is not None and declared.alias == "champion"
    challenger = hosts.model_copy(
        update={
            "scorer": hosts.scorer.model_copy(
                update={"model": declared.model_copy(update={"alias": "challenger"})}
            )
        }
    )
    step = step_for(settings, challenger, "process")
    assert step.score.alias == "challenger"  # type: ignore[attr-defined]
    assert step_for(settings, hosts, "process").score.alias == "champion"  # type: ignore[attr-defined]
    model = champion("http://127.0.0.1:1", "m", alias="challenger")
    assert model.alias == "challenger" and champion("http://127.0.0.1:1", "m").alias == "champion"


def test_a_spec_alert_policy_sets_cuts_suppression_and_people_channels(tmp_path: Any) -> None:
    from spark.alerts import Lifecycle
    from spark.streams.speed import alert_settings

    settings = load_settings(home=tmp_path)
    settings = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"webhook_url": "http://x/h"})}
    )
    infra = settings.infra
    assert alert_settings(settings, infra) is settings  # the spec sets neither: the global ones
    strict = infra.model_copy(
        update={
            "alerting": infra.alerting.model_copy(
                update={"severity_cuts": (0.5, 0.8, 0.95), "suppress_seconds": 60.0}
            )
        }
    )
    own = alert_settings(settings, strict).alerts
    assert (own.severity_cuts, own.suppress_seconds) == ((0.5, 0.8, 0.95), 60.0)
    assert own.webhook_url == "http://x/h"
    hooked = AlertPolicy(channels=("topic", "webhook"))
    assert set(Lifecycle(settings, "t", "infra", hooked).channels) == {"webhook"}
    assert Lifecycle(settings, "t", "markets", AlertPolicy(channels=("topic",))).channels == {}
