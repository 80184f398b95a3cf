"""Lifecycle of the local stack: a KRaft Kafka broker, an MLflow server and Airflow.

Each component runs in its own process group, started from this project's files (jars
resolved by :mod:`anomalake.install`, the venv's ``mlflow`` and ``airflow``), with its pid
file and log in ``<home>/run``. ``up`` is idempotent, ``down`` stops only the processes
whose pid files we wrote (Airflow with SIGINT, which is the only signal on which
``airflow standalone`` stops its children), and ``status`` reports each component's
process, health and URL.

A port held by another process, a component that does not become healthy in time, or a
missing prerequisite raises :class:`~anomalake.errors.AnomalakeError` with the cause and
the fix, after stopping whatever this call had started.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import requests
from typing_extensions import override

from anomalake.errors import AnomalakeError
from anomalake.install import check_java, verify
from anomalake.settings import Settings

COMPONENTS = ("kafka", "mlflow", "airflow")
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class ComponentStatus:
    """What ``status`` reports for one component."""

    name: str
    running: bool
    healthy: bool
    url: str
    pid: int | None
    detail: str = ""


# --- process helpers -------------------------------------------------------------------


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts connections (or holds the bind) on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def group_members(pgid: int) -> list[int]:
    """Live pids whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def memory_bytes(pids: Iterable[int]) -> int:
    """Proportional set size (PSS) of ``pids`` summed: shared pages counted once overall."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


class Process:
    """A component's process group, remembered in ``<run_dir>/<name>.pid``."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.name = name
        self.run_dir = settings.run_dir
        self.pid_file = self.run_dir / f"{name}.pid"
        self.log_file = self.run_dir / f"{name}.log"

    def read(self) -> dict[str, int] | None:
        """The recorded pid and process group, or None."""
        if not self.pid_file.exists():
            return None
        try:
            data = json.loads(self.pid_file.read_text())
            return {"pid": int(data["pid"]), "pgid": int(data["pgid"])}
        except (ValueError, KeyError):
            return None

    @property
    def pid(self) -> int | None:
        """The recorded pid when that process is alive."""
        data = self.read()
        return data["pid"] if data and pid_alive(data["pid"]) else None

    def members(self) -> list[int]:
        """Live processes of the recorded group."""
        data = self.read()
        return group_members(data["pgid"]) if data else []

    def start(self, cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
        """Start ``cmd`` in a new session with output appended to the log file."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(  # noqa: S603 - our own command line
                cmd,
                env={**os.environ, **env},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(json.dumps({"pid": proc.pid, "pgid": proc.pid, "cmd": cmd}))
        return proc.pid

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = 45.0, leader_only: bool = False
    ) -> bool:
        """Signal the leader (or the whole group), wait, then SIGTERM and SIGKILL what is left.

        Returns True if anything was running. The pid file goes only once the group is empty.
        """
        data = self.read()
        if not data:
            return False
        pgid = data["pgid"]
        was_running = bool(group_members(pgid))
        steps: list[tuple[signal.Signals, bool, float]] = [
            (sig, leader_only, timeout),
            (signal.SIGTERM, False, 15.0),
            (signal.SIGKILL, False, 10.0),
        ]
        for step_sig, to_leader, wait in steps:
            if not group_members(pgid):
                break
            try:
                if to_leader:
                    os.kill(data["pid"], step_sig)
                else:
                    os.killpg(pgid, step_sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while group_members(pgid) and time.monotonic() < deadline:
                _reap()
                time.sleep(0.3)
        if group_members(pgid):
            raise AnomalakeError(
                f"{self.name}: processes {group_members(pgid)} survived SIGKILL",
                "inspect them with ps; the pid file is kept",
            )
        self.pid_file.unlink(missing_ok=True)
        return was_running

    def tail(self, lines: int = 5) -> str:
        """The last lines of the log, for error messages."""
        if not self.log_file.exists():
            return ""
        return " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-lines:])


def _reap() -> None:
    """Collect exited children of this process so they do not linger as zombies."""
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
    except ChildProcessError:
        return


def wait_until(check: Callable[[], bool], timeout: float, proc: Process) -> bool:
    """Poll ``check`` until true, the timeout, or the process dying."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if proc.pid is None:
            return False
        time.sleep(1.0)
    return check()


# --- components -------------------------------------------------------------------------


class Component:
    """A service of the local stack."""

    name = ""
    start_timeout = 120.0
    stop_signal = signal.SIGTERM
    signal_leader_only = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc = Process(settings, self.name)

    # to override
    def ports(self) -> list[tuple[str, int]]:
        """Ports the component binds."""
        raise NotImplementedError

    def url(self) -> str:
        """Where a person or client reaches it."""
        raise NotImplementedError

    def healthy(self) -> bool:
        """True when the component answers its health check."""
        raise NotImplementedError

    def launch(self) -> None:
        """Prepare and start the process."""
        raise NotImplementedError

    def after_start(self) -> None:  # noqa: B027 - optional hook
        """Runs once the component is healthy."""

    # shared lifecycle
    def up(self) -> str:
        """Start unless running and healthy; returns what was done."""
        if self.proc.pid is not None:
            if wait_until(self.healthy, self.start_timeout, self.proc):
                self.after_start()
                return "already running"
            self.proc.stop(self.stop_signal, leader_only=self.signal_leader_only)
        elif self.proc.members():
            self.proc.stop(
                self.stop_signal, leader_only=self.signal_leader_only
            )  # leftovers of a dead leader
        for host, port in self.ports():
            if port_in_use(host, port):
                raise AnomalakeError(
                    f"{self.name}: port {port} on {host} is in use by another process",
                    f"stop that process or choose another port (ANOMALAKE_{self.name.upper()}"
                    "__PORT)",
                )
        self.launch()
        if not wait_until(self.healthy, self.start_timeout, self.proc):
            tail = self.proc.tail()
            self.proc.stop(self.stop_signal, leader_only=self.signal_leader_only)
            raise AnomalakeError(
                f"{self.name} did not become healthy within {self.start_timeout:.0f}s "
                f"(log {self.proc.log_file}: {tail[-400:]})",
                f"read {self.proc.log_file}, then `anomalake up` again",
            )
        self.after_start()
        return "started"

    def down(self) -> bool:
        """Stop the component's process group; True if it was running."""
        return self.proc.stop(self.stop_signal, leader_only=self.signal_leader_only)

    def status(self) -> ComponentStatus:
        """Process, health and URL."""
        pid = self.proc.pid
        healthy = pid is not None and self.healthy()
        return ComponentStatus(self.name, pid is not None, healthy, self.url(), pid)


def kafka_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid``, an id starting with ``-`` is drawn again: the
    storage tool would read it as an option (1 start in 64 failed before this).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def kafka_server_properties(settings: Settings, log_dir: Path) -> str:
    """A single-node KRaft broker+controller configuration (pure)."""
    k = settings.kafka
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{k.host}:{k.controller_port}",
            f"listeners=PLAINTEXT://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}",
            f"advertised.listeners=PLAINTEXT://{k.host}:{k.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={log_dir}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=4",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "",
        ]
    )


KAFKA_LOG4J = """\
Configuration:
  name: anomalake-kafka
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


class Kafka(Component):
    """An Apache Kafka broker in KRaft mode, run from the Maven-resolved jars."""

    name = "kafka"
    start_timeout = 90.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.base = settings.home / "kafka"
        self.data = self.base / "data"

    @override
    def ports(self) -> list[tuple[str, int]]:
        k = self.settings.kafka
        return [(k.host, k.port), (k.host, k.controller_port)]

    @override
    def url(self) -> str:
        return f"kafka://{self.settings.kafka.servers}"

    @override
    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        k = self.settings.kafka
        if not port_in_use(k.host, k.port):
            return False
        try:
            AdminClient(k.client_config()).list_topics(timeout=3)
        except Exception:  # noqa: BLE001 - any failure means not healthy yet
            return False
        return True

    def _java(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        jars = verify("kafka", self.settings)
        return [
            "java",
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.base / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={self.base / 'logs'}",
            "-cp",
            f"{jars.directory}/*",
            main,
            *args,
        ]

    @override
    def launch(self) -> None:
        check_java()
        self.base.mkdir(parents=True, exist_ok=True)
        props = self.base / "server.properties"
        props.write_text(kafka_server_properties(self.settings, self.data))
        (self.base / "log4j2.yaml").write_text(KAFKA_LOG4J)
        if not (self.data / "meta.properties").exists():
            fmt = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool", "format", "-t", kafka_cluster_id(), "-c", str(props)
                ),
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise AnomalakeError(
                    f"kafka storage format failed: {(fmt.stderr or fmt.stdout).strip()[-300:]}",
                    f"remove {self.data} if it is stale, then `anomalake up` again",
                )
        self.proc.start(
            self._java("kafka.Kafka", str(props), heap=self.settings.kafka.broker_heap), env={}
        )

    @override
    def after_start(self) -> None:
        ensure_topics(self.settings)


def ensure_topics(settings: Settings) -> list[str]:
    """Create the configured topics that do not exist yet; return those created."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    k = settings.kafka
    admin = AdminClient(k.client_config())
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(name, num_partitions=parts, replication_factor=k.replication_factor)
        for name, parts in settings.topic_partitions.items()
        if name not in existing
    ]
    if not wanted:
        return []
    for _name, future in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return [t.topic for t in wanted]


class Mlflow(Component):
    """An MLflow tracking server (SQLite backend, local artifact store by default)."""

    name = "mlflow"
    start_timeout = 120.0

    @override
    def ports(self) -> list[tuple[str, int]]:
        return [(self.settings.mlflow.host, self.settings.mlflow.port)]

    @override
    def url(self) -> str:
        return f"http://{self.settings.mlflow.host}:{self.settings.mlflow.port}"

    @override
    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url()}/health", timeout=3).status_code == 200
        except requests.RequestException:
            return False

    @override
    def launch(self) -> None:
        s = self.settings
        (s.home / "mlflow").mkdir(parents=True, exist_ok=True)
        cmd = [
            str(VENV_BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            s.mlflow_backend_store,
            "--artifacts-destination",
            s.mlflow_artifact_root,
            "--host",
            s.mlflow.host,
            "--port",
            str(s.mlflow.port),
            "--workers",
            "1",
        ]
        env = {
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            # The job runner (GenAI scorers) forks seven huey consumers; we do not use it.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        self.proc.start(cmd, env=env)


class Airflow(Component):
    """Airflow 3 (`airflow standalone`: api-server, scheduler, dag-processor, triggerer)."""

    name = "airflow"
    start_timeout = 240.0
    # `airflow standalone` stops its children only on SIGINT, sent to it alone; a signal
    # to the whole group makes the scheduler wait on its (also signalled) workers.
    stop_signal = signal.SIGINT
    signal_leader_only = True

    @override
    def ports(self) -> list[tuple[str, int]]:
        return [(self.settings.airflow.host, self.settings.airflow.port)]

    @override
    def url(self) -> str:
        return f"http://{self.settings.airflow.host}:{self.settings.airflow.port}"

    @override
    def healthy(self) -> bool:
        try:
            resp = requests.get(f"{self.url()}/api/v2/monitor/health", timeout=3)
            if resp.status_code != 200:
                return False
            body = resp.json()
        except (requests.RequestException, ValueError):
            return False
        return bool(
            body.get("metadatabase", {}).get("status") == "healthy"
            and body.get("scheduler", {}).get("status") == "healthy"
        )

    def env(self) -> dict[str, str]:
        """Environment of every airflow command we run."""
        return {
            **self.settings.airflow_env(),
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(self.settings.dags_folder.parent),
        }

    @override
    def launch(self) -> None:
        migrate_airflow_db(self.settings)
        self.proc.start(
            [str(VENV_BIN / "airflow"), "standalone"],
            env=self.env(),
            cwd=self.settings.airflow_home,
        )


def migrate_airflow_db(settings: Settings) -> None:
    """``airflow db migrate`` for the project's Airflow home and database (idempotent)."""
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    migrate = subprocess.run(
        [str(VENV_BIN / "airflow"), "db", "migrate"],
        env={**os.environ, **Airflow(settings).env()},
        capture_output=True,
        text=True,
    )
    if migrate.returncode != 0:
        raise AnomalakeError(
            f"airflow db migrate failed: {migrate.stderr.strip()[-300:]}",
            f"check {settings.airflow_home}, then try again",
        )


def components(settings: Settings, names: Iterable[str] | None = None) -> list[Component]:
    """The components named (all of them, in start order, by default)."""
    classes: dict[str, type[Component]] = {"kafka": Kafka, "mlflow": Mlflow, "airflow": Airflow}
    chosen = list(names) if names else list(COMPONENTS)
    unknown = [n for n in chosen if n not in classes]
    if unknown:
        raise AnomalakeError(
            f"unknown component(s): {', '.join(unknown)}", f"choose from {', '.join(COMPONENTS)}"
        )
    return [classes[n](settings) for n in COMPONENTS if n in chosen]


def _require_local(settings: Settings) -> None:
    if settings.profile != "local":
        raise AnomalakeError(
            "the cluster profile uses shared services that this command does not start",
            "use ANOMALAKE_PROFILE=local, or manage the cluster services with their own tools",
        )


def up(
    settings: Settings, names: Iterable[str] | None = None, echo: Callable[[str], None] = print
) -> None:
    """Start the components; on any failure stop those this call started, then raise."""
    _require_local(settings)
    started: list[Component] = []
    try:
        for comp in components(settings, names):
            what = comp.up()
            if what == "started":
                started.append(comp)
            echo(f"{comp.name:8} {what:16} {comp.url()}")
    except BaseException:
        for comp in reversed(started):
            comp.down()
        raise


def down(
    settings: Settings, names: Iterable[str] | None = None, echo: Callable[[str], None] = print
) -> None:
    """Stop the components (reverse start order)."""
    for comp in reversed(components(settings, names)):
        echo(f"{comp.name:8} {'stopped' if comp.down() else 'not running'}")


def status(settings: Settings) -> list[ComponentStatus]:
    """Each component's process, health and URL."""
    result = []
    for comp in components(settings):
        st = comp.status()
        mem = memory_bytes(comp.proc.members()) if st.running else 0
        detail = f"memory (PSS) {mem / 2**20:.0f} MiB" if st.running else ""
        result.append(ComponentStatus(st.name, st.running, st.healthy, st.url, st.pid, detail))
    return result
