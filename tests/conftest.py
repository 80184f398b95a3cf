"""Shared fixtures: an isolated home and free ports, one Spark session, real services.

The environment is set at import, before anything imports Airflow or reads settings, so
the suite never touches a developer's running stack, ``~/airflow`` or ``.anomalake``.
Services are started with the same code as ``anomalake up`` and stopped in teardown.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_HOME = Path(tempfile.mkdtemp(prefix="anomalake-test-"))
os.environ.update(
    {
        "ANOMALAKE_PROFILE": "local",
        "ANOMALAKE_HOME": str(_HOME),
        "ANOMALAKE_KAFKA__PORT": str(_free_port()),
        "ANOMALAKE_KAFKA__CONTROLLER_PORT": str(_free_port()),
        "ANOMALAKE_MLFLOW__PORT": str(_free_port()),
        "ANOMALAKE_AIRFLOW__PORT": str(_free_port()),
    }
)

from anomalake.settings import Settings, get_settings  # noqa: E402
from tests.servers import receiver, smtp  # noqa: E402, F401 - fixtures of alert channels

get_settings.cache_clear()
os.environ.update(get_settings().airflow_env())

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The settings every test runs with (isolated home, free ports)."""
    return get_settings()


@pytest.fixture(scope="session")
def spark(settings: Settings):  # type: ignore[no-untyped-def]
    """The one SparkSession of the suite (local[2], Delta, Kafka connector)."""
    from anomalake.install import install
    from spark.session import get_spark

    install(settings)
    session = get_spark(settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def kafka(settings: Settings) -> Iterator[Settings]:
    """A real KRaft broker on a free port, with the configured topics."""
    from anomalake.install import install
    from anomalake.stack import Kafka

    install(settings)
    broker = Kafka(settings)
    broker.up()
    yield settings
    broker.down()


@pytest.fixture(scope="session")
def mlflow_server(settings: Settings) -> Iterator[str]:
    """A real MLflow tracking server (SQLite, local artifacts) on a free port."""
    from anomalake.stack import Mlflow

    server = Mlflow(settings)
    server.up()
    yield settings.mlflow.uri
    server.down()


@pytest.fixture(scope="session")
def airflow_db(settings: Settings) -> Settings:
    """An Airflow metadata database migrated in the test home."""
    from anomalake.stack import migrate_airflow_db

    migrate_airflow_db(settings)
    return settings


logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="session", autouse=True)
def _remove_test_home() -> Iterator[None]:
    yield
    import shutil

    shutil.rmtree(_HOME, ignore_errors=True)
