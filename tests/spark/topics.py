"""Topics and settings of their own for tests that run against the session's broker."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from anomalake.settings import Settings
from anomalake.stack import ensure_topics


def new_topic(settings: Settings, name: str | None = None, partitions: int = 2) -> str:
    """Create topic ``name`` (a fresh one if None) with ``anomalake up``'s own function."""
    name = name or f"it-{uuid.uuid4().hex[:8]}"
    kafka = settings.kafka.model_copy(update={"topics": {name: partitions}})
    ensure_topics(settings.model_copy(update={"kafka": kafka}))
    return name


def isolated(
    settings: Settings, use_case: str, tmp_path: Path, prefix: str, **update: Any
) -> Settings:
    """Settings whose ``use_case`` stream has its own topic, query, tables and home."""
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    new_topic(settings, name)
    spec = getattr(settings, use_case).model_copy(
        update={
            "topic": name,
            "query_name": name,
            "bronze_table": f"{name}_bronze",
            "quarantine_table": f"{name}_quarantine",
            "alerts_table": f"{name}_alerts",
            "trigger_seconds": 0.5,
            **update,
        }
    )
    return settings.model_copy(update={use_case: spec, "home": tmp_path / "home"})


def wait_until(check, timeout: float = 180.0):  # type: ignore[no-untyped-def]
    """``check()``'s first truthy value, polled every second; its docstring names a timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"not reached in {timeout} s: {check.__doc__}")


def isolated_infra(
    settings: Settings, tmp_path: Path, webhook: str, prefix: str = "infra"
) -> Settings:
    """Settings whose infra stream has its own topic, query, tables and home."""
    own = isolated(settings, "infra", tmp_path, prefix, max_offsets_per_trigger=1500)
    infra = own.infra.model_copy(update={"backfill_table": f"{own.infra.topic}_backfill"})
    alerts = settings.alerts.model_copy(
        update={"webhook_url": webhook, "retry_base_seconds": 0.1, "deliver_every_seconds": 0.2}
    )
    return settings.model_copy(update={"infra": infra, "alerts": alerts, "home": tmp_path / "home"})
