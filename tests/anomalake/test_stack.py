from __future__ import annotations

import base64
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from anomalake.errors import AnomalakeError
from anomalake.settings import Settings
from anomalake.stack import (
    Kafka,
    Process,
    group_members,
    kafka_cluster_id,
    kafka_server_properties,
    memory_bytes,
    port_in_use,
)


def test_cluster_id_is_16_bytes_urlsafe() -> None:
    cid = kafka_cluster_id()
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16
    assert kafka_cluster_id() != cid
    # one id in 64 would start with '-', which the storage tool reads as an option
    assert not any(kafka_cluster_id().startswith("-") for _ in range(2000))


def test_server_properties_are_single_node_kraft(tmp_path: Path) -> None:
    s = Settings(profile="local", home=tmp_path)
    props = dict(
        line.split("=", 1)
        for line in kafka_server_properties(s, tmp_path / "data").splitlines()
        if line
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{s.kafka.controller_port}"
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{s.kafka.port}"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert "zookeeper.connect" not in props


def test_port_in_use_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_in_use("127.0.0.1", sock.getsockname()[1])


CHILD_SCRIPT = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "time.sleep(600)\n"
)


def test_process_stop_leaves_no_group_member(tmp_path: Path) -> None:
    proc = Process(Settings(profile="local", home=tmp_path), "sleeper")
    pid = proc.start([sys.executable, "-c", CHILD_SCRIPT], env={})
    deadline = time.monotonic() + 10
    while len(group_members(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(group_members(pid)) == 2  # leader and its child
    assert memory_bytes(group_members(pid)) > 0
    assert proc.stop(signal.SIGTERM, timeout=5) is True
    assert group_members(pid) == []
    assert not proc.pid_file.exists()
    assert proc.stop() is False  # a second stop is harmless


def test_process_stop_escalates_when_the_signal_is_ignored(tmp_path: Path) -> None:
    proc = Process(Settings(profile="local", home=tmp_path), "stubborn")
    script = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"
    pid = proc.start([sys.executable, "-c", script], env={})
    time.sleep(0.5)
    started = time.monotonic()
    assert proc.stop(signal.SIGINT, timeout=1, leader_only=True) is True
    assert group_members(pid) == []
    assert time.monotonic() - started < 20


def test_occupied_port_is_a_clear_error_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        s = Settings(
            profile="local", home=tmp_path, kafka={"port": port, "controller_port": port + 1}
        )
        with pytest.raises(AnomalakeError, match=rf"port {port} .* in use.*fix: stop"):
            Kafka(s).up()
    assert not (tmp_path / "run" / "kafka.pid").exists()


def test_cluster_profile_refuses_to_start_local_services(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from anomalake import stack

    s = Settings.model_construct(profile="cluster")
    with pytest.raises(AnomalakeError, match="cluster profile"):
        stack.up(s)
