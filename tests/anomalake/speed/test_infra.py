"""The infra speed layer's per-asset step, without Spark: validation, order, state."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from anomalake.generators.infra import write_infra_files
from anomalake.replay import infra_messages
from anomalake.settings import SKAB_SENSORS, get_settings
from anomalake.speed.infra import (
    AssetState,
    load_config,
    parse_reading,
    score_messages,
    score_records,
)

GOOD = {"v": 1, "asset": "p1", "timestamp": "2026-03-09 10:00:00", "origin": "replay"}
GOOD.update({s: 1.0 for s in SKAB_SENSORS})


def _raw(**changes: object) -> str:
    doc = {**GOOD, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...})


@pytest.mark.parametrize(
    ("raw", "key", "reason"),
    [
        ("x" * 5000, "p1", "oversized payload: 5000 bytes > 4096"),
        ("{not json", "p1", "malformed JSON"),
        ("[1, 2]", "p1", "malformed JSON: not an object"),
        (_raw(v=2), "p1", "unsupported schema version: 2"),
        (_raw(asset=...), "p1", "missing field asset"),
        (_raw(), "p2", "asset 'p1' differs from the record key 'p2'"),
        (_raw(timestamp="2026-13-45 99:00:00"), "p1", "unparsable timestamp"),
        (_raw(Current="n/a"), "p1", "bad type for Current: 'n/a'"),
        (_raw(Pressure=...), "p1", "missing field Pressure"),
        (_raw(Voltage=True), "p1", "bad type for Voltage"),
        (_raw(origin="future"), "p1", "unknown origin"),
    ],
)
def test_every_bad_record_gets_its_reason(raw: str, key: str, reason: str) -> None:
    reading, why = parse_reading(raw, key, SKAB_SENSORS, 4096)
    assert reading is None and why is not None and reason in why


def test_a_good_record_parses_as_utc_seconds() -> None:
    reading, why = parse_reading(_raw(), "p1", SKAB_SENSORS, 4096)
    assert why is None and reading is not None
    assert reading.t == pd.Timestamp("2026-03-09 10:00:00", tz="UTC").timestamp()
    assert reading.values == [1.0] * len(SKAB_SENSORS) and reading.origin == "replay"


def _records(raws: list[str], key: str = "p1") -> pd.DataFrame:
    return pd.DataFrame(
        {"raw_value": raws, "key": key, "topic": "t", "partition": 0, "offset": range(len(raws))}
    )


def test_repeated_and_out_of_order_times_are_quarantined_not_scored() -> None:
    settings = get_settings()
    state = AssetState.fresh(load_config(settings))
    raws = [
        _raw(timestamp="2026-03-09 10:00:01"),
        _raw(timestamp="2026-03-09 10:00:01"),
        _raw(timestamp="2026-03-09 10:00:00"),
        _raw(timestamp="2026-03-09 10:00:02"),
    ]
    out = score_records(state, _records(raws), SKAB_SENSORS, 4096)
    assert out["reason"].tolist()[1].startswith("repeated time")
    assert out["reason"].tolist()[2].startswith("out of order")
    assert out["reason"].isna().tolist() == [True, False, False, True]
    assert state.readings == 2
    assert out.loc[1, "raw_value"] == raws[1] and pd.isna(out.loc[0, "raw_value"])


def test_records_without_a_key_are_validated_and_quarantined() -> None:
    out = score_records(None, _records([_raw(), "{bad"], key=None), SKAB_SENSORS, 4096)  # type: ignore[arg-type]
    assert out["reason"].tolist() == [
        "no record key: readings are keyed by asset",
        "malformed JSON",
    ]


def test_scores_do_not_depend_on_how_records_are_split_into_batches(tmp_path: Path) -> None:
    """What the state store does between micro-batches: JSON state, then the next batch."""
    settings = get_settings()
    config = load_config(settings)
    write_infra_files(tmp_path, assets=2, hours=0.3, seed=4, bad_rows=True)
    whole = score_messages(infra_messages(tmp_path), settings, config)
    frame = pd.DataFrame(
        [
            {"key": k, "raw_value": v.decode(), "topic": "", "partition": 0, "offset": n}
            for n, (k, v) in enumerate(infra_messages(tmp_path))
        ]
    )
    parts = []
    for _asset, group in frame.groupby("key"):
        stored: str | None = None
        for start in range(0, len(group), 97):
            state = AssetState.from_json(config, stored) if stored else AssetState.fresh(config)
            parts.append(score_records(state, group.iloc[start : start + 97], SKAB_SENSORS, 4096))
            stored = state.to_json()
    split = pd.concat(parts, ignore_index=True)
    columns = ["asset", "offset", "score", "anomaly", "reason"]
    pd.testing.assert_frame_equal(
        whole.sort_values("offset")[columns].reset_index(drop=True),
        split.sort_values("offset")[columns].reset_index(drop=True),
    )
    each_detector = [
        frame["scores"].tolist()
        for frame in (whole.sort_values("offset"), split.sort_values("offset"))
    ]
    assert each_detector[0] == each_detector[1]
    assert whole["reason"].notna().sum() == 10, "the generator's ten bad rows"
