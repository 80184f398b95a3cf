"""`anomalake alerts list | ack | resolve`, in process: no Spark session is involved."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from anomalake import cli
from anomalake.settings import Settings


def test_list_acknowledge_resolve_and_one_line_errors(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anomalake.alerts.store import AlertStore, apply_detections, to_micros

    table = f"alerts_cli_{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(
        update={"infra": settings.infra.model_copy(update={"alerts_table": table})}
    )
    monkeypatch.setattr(cli, "get_settings", lambda: s)
    runner = CliRunner()

    empty = runner.invoke(cli.app, ["alerts", "list"])
    assert empty.exit_code == 0, empty.output
    assert f"no alerts in {table}" in empty.output

    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    (alert,) = apply_detections(
        AlertStore(s.table_path(table)),
        use_case="infra",
        groups=[
            {"entity": "pump-7", "rule": "t2", "origin": "live", "count": 2, "score": 0.995}
            | {"first_us": to_micros(at), "last_us": to_micros(at), "details": "{}"}
        ],
        tag="cli_test:0",
        suppress_seconds=s.alerts.suppress_seconds,
        cuts=s.alerts.severity_cuts,
    )
    alert_id = alert["alert_id"]

    listed = runner.invoke(cli.app, ["alerts", "list", "--status", "open"])
    assert listed.exit_code == 0, listed.output
    header, line = listed.output.strip().splitlines()
    assert header.split()[:4] == ["alert_id", "status", "severity", "entity"]
    assert line.split()[:7] == [alert_id, "open", "high", "pump-7", "t2", "2", "2026-01-05"]

    acked = runner.invoke(cli.app, ["alerts", "ack", alert_id, "--by", "ann"])
    assert acked.exit_code == 0 and f"{alert_id} acknowledged by ann" in acked.output
    done = runner.invoke(cli.app, ["alerts", "resolve", alert_id, "--by", "bob", "--note", "ok"])
    assert done.exit_code == 0 and f"{alert_id} resolved by bob" in done.output
    listed = runner.invoke(cli.app, ["alerts", "list", "--status", "resolved", "--limit", "5"])
    assert listed.output.strip().splitlines()[1].split()[-1] == "bob"

    again = runner.invoke(cli.app, ["alerts", "ack", alert_id])
    assert again.exit_code == 1
    (error,) = again.stderr.strip().splitlines()
    assert error.startswith("error: ") and "resolved" in error and "fix:" in error
    other = runner.invoke(cli.app, ["alerts", "list", "--use-case", "markets"])
    assert other.exit_code == 0 and not other.stderr  # markets has the one lifecycle too
    unknown = runner.invoke(cli.app, ["alerts", "list", "--use-case", "weather"])
    assert unknown.exit_code == 1 and "unknown use case 'weather'" in unknown.stderr
