"""The batch benchmark's own checks (its figures are printed, never asserted)."""

from __future__ import annotations

import sys

import pytest

from anomalake.errors import AnomalakeError
from bench.batch_markets import require_duckdb


def test_the_benchmark_names_the_missing_duckdb_and_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_duckdb()  # installed with the dev group
    monkeypatch.setitem(sys.modules, "duckdb", None)  # as if it were not installed
    with pytest.raises(AnomalakeError, match=r"duckdb is not installed.*anomalake\[bench\]"):
        require_duckdb()
