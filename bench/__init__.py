"""Benchmarks: scripts that print figures (recorded in docs/benchmarks.md), never tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anomalake.settings import Settings


def isolated_spark() -> tuple[Settings, Any]:
    """Settings with a fresh temporary home, and the Spark session made from them."""
    import os
    import tempfile

    from anomalake.install import install
    from anomalake.settings import load_settings
    from spark.session import get_spark

    home = tempfile.mkdtemp(prefix="anomalake-bench-")
    os.environ["ANOMALAKE_HOME"] = home
    settings = load_settings(home=home)
    install(settings)
    return settings, get_spark(settings)
