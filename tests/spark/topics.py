"""Topics and settings of their own for tests that run against the session's broker."""

from __future__ import annotations

import uuid
from pathlib import Path

from anomalake.settings import Settings
from anomalake.stack import ensure_topics


def new_topic(settings: Settings, name: str | None = None, partitions: int = 2) -> str:
    """Create topic ``name`` (a fresh one if None) with ``anomalake up``'s own function."""
    name = name or f"it-{uuid.uuid4().hex[:8]}"
    kafka = settings.kafka.model_copy(update={"topics": {name: partitions}})
    ensure_topics(settings.model_copy(update={"kafka": kafka}))
    return name


def isolated_infra(
    settings: Settings, tmp_path: Path, webhook: str, prefix: str = "infra"
) -> Settings:
    """Settings whose infra stream has its own topic, query, tables and home."""
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    new_topic(settings, name)
    infra = settings.infra.model_copy(
        update={
            "topic": name,
            "query_name": name,
            "bronze_table": f"{name}_bronze",
            "quarantine_table": f"{name}_quarantine",
            "alerts_table": f"{name}_alerts",
            "backfill_table": f"{name}_backfill",
            "max_offsets_per_trigger": 1500,
            "trigger_seconds": 0.5,
        }
    )
    alerts = settings.alerts.model_copy(
        update={"webhook_url": webhook, "retry_base_seconds": 0.1, "deliver_every_seconds": 0.2}
    )
    return settings.model_copy(update={"infra": infra, "alerts": alerts, "home": tmp_path / "home"})
