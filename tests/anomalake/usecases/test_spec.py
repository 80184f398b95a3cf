"""Use cases as declarations: the YAML specs, their validation and the registry."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from anomalake import usecases
from anomalake.settings import InfraSettings, Settings, load_settings
from anomalake.usecases import spec as spec_module
from anomalake.usecases.spec import (
    AlertPolicy,
    EventTime,
    FieldSpec,
    Ordering,
    Scorer,
    UseCaseSpec,
)


def test_every_declared_use_case_is_its_settings_section() -> None:
    settings = load_settings()
    assert usecases.names() == ("markets", "infra", "hosts", "wearables")
    for name, spec in settings.use_cases.items():
        assert spec is getattr(settings, name) and spec.name == name
    assert settings.markets.entity == "symbol" and settings.markets.order.policy == "reorder"
    assert settings.markets.fields["volume"].type == "int"
    assert settings.infra.sensors[0] == "Accelerometer1RMS" and len(settings.infra.sensors) == 8
    assert settings.hosts.topics() == ("hosts.process", "hosts.memory")
    assert settings.wearables.entity_noun == "wearer" and settings.wearables.window_seconds == 60


def test_the_environment_overrides_the_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMALAKE_INFRA__TOPIC", "plant7.sensors")
    monkeypatch.setenv("ANOMALAKE_MARKETS__ORDER__LATENESS_SECONDS", "120")
    settings = load_settings()
    assert settings.infra.topic == "plant7.sensors"
    assert settings.infra.quarantine_table == "quarantine_infra"  # the rest still declared
    assert settings.markets.order.lateness_seconds == 120
    assert "plant7.sensors" in settings.topic_partitions
    from anomalake.detection.markets import rule_params

    assert rule_params(settings.markets).lateness_minutes == 2


def test_topics_partitions_and_lifecycles_come_from_the_specs() -> None:
    settings = load_settings()
    assert settings.topic_partitions == {
        "markets.bars": 2,
        "infra.sensors": 2,
        "hosts.process": 1,
        "hosts.memory": 1,
        "wearables.frames": 2,
        "alerts": 1,
    }
    # every use case has the one alert lifecycle, in its own table
    assert settings.alert_tables == {
        "markets": "alerts_markets",
        "infra": "alerts_infra",
        "hosts": "alerts_hosts",
        "wearables": "alerts_wearables",
    }
    assert settings.hosts.model_name("dev-", "memory") == "dev-hosts-toniot-memory"


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (Ordering, {"policy": "unordered", "lateness_seconds": 60}, "reorder policy only"),
        (Ordering, {"policy": "reorder", "lateness_seconds": -1}, "must not be negative"),
        (Ordering, {"policy": "sometimes"}, "reorder"),
        (FieldSpec, {"type": "string", "min": 0}, "no numeric range"),
        (FieldSpec, {"type": "float", "maximum": 3}, "Extra inputs"),
        (Scorer, {}, "needs detectors, rules or a model"),
        (AlertPolicy, {"channels": ["pager"]}, "topic"),
        (AlertPolicy, {"severity_cuts": [0.99, 0.9, 0.999]}, "must increase"),
        (EventTime, {"field": "t", "timezone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_a_wrong_declaration_is_refused_by_name(
    model: type, data: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        model.model_validate(data)


def test_an_unknown_key_in_a_spec_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = yaml.safe_load((spec_module.SPEC_DIR / "infra.yaml").read_text())
    (tmp_path / "infra.yaml").write_text(yaml.safe_dump({**declared, "tables": {}}))
    monkeypatch.setattr(spec_module, "SPEC_DIR", tmp_path)
    spec_module._read.cache_clear()
    try:
        with pytest.raises(ValidationError, match="unknown keys tables"):
            InfraSettings.model_validate({})
    finally:
        spec_module._read.cache_clear()


def test_a_new_use_case_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A YAML file beside the others is a use case: listed, validated, its topic created."""
    for name in usecases.names():
        (tmp_path / f"{name}.yaml").write_text((spec_module.SPEC_DIR / f"{name}.yaml").read_text())
    (tmp_path / "lines.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "lines",
                "topic": "lines.speed",
                "entity": "line",
                "event_time": {"field": "t", "format": "unix_seconds"},
                "order": {"policy": "strictly_increasing"},
                "fields": {"speed": {"type": "float", "unit": "m/s", "min": 0}},
                "scorer": {"detectors": "lines.yaml"},
                "entry_points": {
                    "messages": "anomalake.replay:infra_replay",
                    "step": "anomalake.speed.infra:InfraStep",
                },
                "bronze_table": "bronze_lines",
                "quarantine_table": "quarantine_lines",
                "alerts_table": "alerts_lines",
                "query_name": "lines_speed_layer",
            }
        )
    )
    monkeypatch.setattr(spec_module, "SPEC_DIR", tmp_path)
    spec_module._read.cache_clear()
    try:
        settings = Settings()
        assert usecases.names() == ("markets", "infra", "hosts", "wearables", "lines")
        lines = settings.use_case("lines")
        assert isinstance(lines, UseCaseSpec) and lines.fields["speed"].unit == "m/s"
        assert settings.topic_partitions["lines.speed"] == 1
        assert settings.alert_tables["lines"] == "alerts_lines"
    finally:
        spec_module._read.cache_clear()


def test_every_entry_point_names_a_function() -> None:
    for spec in load_settings().use_cases.values():
        for verb, target in spec.entry_points.model_dump().items():
            if target is None:
                continue
            module, _, attribute = target.partition(":")
            assert callable(getattr(importlib.import_module(module), attribute)), (spec.name, verb)


def test_a_spec_file_must_declare_its_own_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "infra.yaml").write_text((spec_module.SPEC_DIR / "markets.yaml").read_text())
    monkeypatch.setattr(spec_module, "SPEC_DIR", tmp_path)
    spec_module._read.cache_clear()
    try:
        with pytest.raises(ValueError, match="declares 'markets', not 'infra'"):
            spec_module.read_declaration("infra")
    finally:
        spec_module._read.cache_clear()


def test_a_renamed_setting_is_refused_and_a_field_is_overridden_by_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANOMALAKE_INFRA__FIELDS__PRESSURE__MAX", "10")  # arrives lower-cased
    infra = load_settings().infra
    assert infra.fields["Pressure"].max == 10 and infra.fields["Pressure"].unit == "bar"
    assert len(infra.fields) == 8
    monkeypatch.setenv("ANOMALAKE_HOSTS__TONIOT_MODEL", "old-{activity}")  # now scorer.model
    with pytest.raises(ValidationError, match="toniot_model"):
        load_settings()


def test_markets_lateness_is_whole_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    from anomalake.detection.markets import rule_params

    monkeypatch.setenv("ANOMALAKE_MARKETS__ORDER__LATENESS_SECONDS", "90")
    with pytest.raises(ValueError, match="whole minutes"):
        rule_params(load_settings().markets)
