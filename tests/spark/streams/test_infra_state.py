"""The infra state function's state lifetime: kept while an asset is heard from, then dropped."""

from __future__ import annotations

import json

import pandas as pd

from anomalake.settings import SKAB_SENSORS, get_settings
from anomalake.speed.infra import AssetState, InfraStep, load_config
from spark.streams.speed import state_function
from tests.spark.streams.fake_state import FakeGroupState


def _records(seconds: range) -> pd.DataFrame:
    raws = [
        json.dumps(
            {"v": 1, "asset": "p1", "timestamp": f"2026-03-09T10:00:{t:02d}"}
            | dict.fromkeys(SKAB_SENSORS, 1.0)
        )
        for t in seconds
    ]
    return pd.DataFrame(
        {"raw_value": raws, "key": "p1", "topic": "t", "partition": 0, "offset": list(seconds)}
    )


def test_an_asset_silent_for_the_ttl_has_its_state_dropped() -> None:
    s = get_settings()
    config = load_config(s)
    step = state_function(InfraStep(config, SKAB_SENSORS, 4096, s.infra.limits, ttl_ms=60_000))
    state = FakeGroupState()
    (out,) = step(("p1",), iter([_records(range(3))]), state)
    assert out["reason"].isna().all() and state.timeout_ms == 60_000
    assert AssetState.from_json(config, state.get[0]).readings == 3
    (out,) = step(("p1",), iter([_records(range(3, 5))]), state)  # heard from: kept
    assert AssetState.from_json(config, state.get[0]).readings == 5
    state.hasTimedOut = True
    assert list(step(("p1",), iter([]), state)) == []
    assert not state.exists
