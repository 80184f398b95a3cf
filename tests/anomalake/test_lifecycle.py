"""`anomalake up | status | down` as a person runs them, on real services."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from anomalake.errors import AnomalakeError
from anomalake.settings import Settings
from anomalake.stack import VENV_BIN, Mlflow, group_members


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str, timeout: int = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "anomalake"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.integration
def test_up_twice_status_and_down_leave_nothing_behind(tmp_path: Path) -> None:
    env = {**os.environ, "ANOMALAKE_HOME": str(tmp_path)}
    for var in ("KAFKA__PORT", "KAFKA__CONTROLLER_PORT", "MLFLOW__PORT", "AIRFLOW__PORT"):
        env[f"ANOMALAKE_{var}"] = str(_free_port())
    for var in [k for k in env if k.startswith("AIRFLOW")]:
        del env[var]
    pgids: list[int] = []
    try:
        first = _cli(env, "up")
        assert first.returncode == 0, first.stderr
        assert first.stdout.count("started") == 3
        pgids = [
            json.loads((tmp_path / "run" / f"{c}.pid").read_text())["pgid"]
            for c in ("kafka", "mlflow", "airflow")
        ]

        second = _cli(env, "up")
        assert second.returncode == 0, second.stderr
        assert second.stdout.count("already running") == 3

        status = _cli(env, "status")
        assert status.returncode == 0, status.stdout
        lines = status.stdout.splitlines()
        assert [ln.split()[:2] for ln in lines] == [
            ["kafka", "healthy"],
            ["mlflow", "healthy"],
            ["airflow", "healthy"],
        ]
        assert f"127.0.0.1:{env['ANOMALAKE_AIRFLOW__PORT']}" in lines[2]
    finally:
        down = _cli(env, "down")
    assert down.returncode == 0, down.stderr
    assert [group_members(p) for p in pgids] == [[], [], []]
    assert _processes_mentioning(str(tmp_path)) == []
    assert list((tmp_path / "run").glob("*.pid")) == []
    after = _cli(env, "status")
    assert after.returncode == 1
    assert after.stdout.count("stopped") == 3


@pytest.mark.integration
def test_a_server_that_is_not_healthy_in_time_is_stopped(tmp_path: Path) -> None:
    settings = Settings(profile="local", home=tmp_path, mlflow={"port": _free_port()})
    server = Mlflow(settings)
    server.start_timeout = 0.5
    with pytest.raises(AnomalakeError, match="did not become healthy within"):
        server.up()
    assert server.proc.read() is None
    assert _processes_mentioning(str(tmp_path)) == []


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found
