"""`anomalake train hosts` and `anomalake models ...` through the installed command."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from anomalake.generators.hosts import write_host_files
from anomalake.stack import VENV_BIN

pytestmark = pytest.mark.integration


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    full["ANOMALAKE_HOSTS__SCORER__MODEL__NAME"] = "test-cli-toniot-{stream}"
    full.update(env)
    return subprocess.run(
        [str(VENV_BIN / "anomalake"), *args], env=full, capture_output=True, text=True, timeout=600
    )


def test_train_list_promote_rollback_and_one_line_errors(
    mlflow_server: str, tmp_path: Path
) -> None:
    files = write_host_files(tmp_path, 2500, seed=8, activities=("memory",))
    name = "local-test-cli-toniot-memory"

    trained = _cli("train", "hosts", str(files["memory"]))  # the dataset is guessed: toniot
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert f"{name} v1 registered as challenger" in trained.stdout
    assert "promoted: no champion yet" in trained.stdout

    listed = _cli("models", "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    (line,) = [ln for ln in listed.stdout.splitlines() if ln.startswith(name)]
    assert line.split()[1:3] == ["1", "challenger,champion"]
    assert 0.5 < float(line.split()[3]) <= 1.0  # holdout_roc_auc

    again = _cli("models", "promote", "test-cli-toniot-memory", "--margin", "0")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "not promoted: version 1 is already the champion" in again.stdout

    back = _cli("models", "rollback", name)
    assert back.returncode == 1
    assert back.stderr.startswith("error: ") and len(back.stderr.strip().splitlines()) == 1
    assert "nothing to roll back to" in back.stderr

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    down = _cli("models", "list", ANOMALAKE_MLFLOW__PORT=str(port))
    assert down.returncode == 1 and len(down.stderr.strip().splitlines()) == 1
    assert f"http://127.0.0.1:{port}" in down.stderr and "anomalake up mlflow" in down.stderr
