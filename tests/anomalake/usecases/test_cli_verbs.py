"""The per-use-case CLI verbs, generated from the registry: one command each, one signature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anomalake import cli
from anomalake.replay import hosts_replay, infra_replay, markets_replay
from anomalake.settings import load_settings
from anomalake.usecases import names


@pytest.mark.parametrize("verb", ["generate", "replay", "stream"])
def test_every_use_case_has_its_verbs(verb: str) -> None:
    out = CliRunner().invoke(cli.app, [verb, "--help"])
    assert out.exit_code == 0, out.output
    for name in names():
        assert f" {name} " in out.output


def test_backtest_exists_where_the_spec_declares_one() -> None:
    out = CliRunner().invoke(cli.app, ["backtest", "--help"]).output
    assert " infra " in out and " hosts " in out and " markets " not in out


@pytest.mark.parametrize(
    ("use_case", "replay", "key_field"),
    [
        ("markets", markets_replay, "symbol"),
        ("infra", infra_replay, "asset"),
        ("hosts", hosts_replay, "host"),
    ],
)
def test_generate_then_replay_messages_of_each_entity(
    tmp_path: Path, use_case: str, replay: object, key_field: str
) -> None:
    """What `generate` writes, the use case's replay reads: keyed by the spec's entity."""
    spec = load_settings().use_case(use_case)
    assert spec.entity == key_field
    out = CliRunner().invoke(
        cli.app, ["generate", use_case, str(tmp_path), "--entities", "2", "--hours", "0.05"]
    )
    assert out.exit_code == 0, out.output
    assert str(tmp_path) in out.output
    stream = spec.streams[0] if spec.streams else None
    messages = list(replay(tmp_path, 0.0, "live", stream))  # type: ignore[operator]
    keys = {k for k, _ in messages}
    assert len(keys) == 2, keys
    first = json.loads(messages[0][1])
    assert first[key_field] == messages[0][0]
    assert spec.event_time.field in first


def test_a_stream_of_a_single_stream_use_case_is_refused() -> None:
    out = CliRunner().invoke(cli.app, ["replay", "markets", "x", "--stream", "memory"])
    assert out.exit_code == 1 and "markets has one stream" in out.stderr
    out = CliRunner().invoke(cli.app, ["replay", "hosts", "x", "--stream", "disk"])
    assert out.exit_code == 1 and "use one of process, memory" in out.stderr


def test_hosts_generates_no_faults(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli.app, ["generate", "hosts", str(tmp_path), "--faults"])
    assert out.exit_code == 1 and "writes no faulty rows" in out.stderr
