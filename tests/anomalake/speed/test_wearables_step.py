"""The wearables step: frames validated, windows as the batch computes them, no frame stops it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomalake.detection.wearables import FEATURES, MEDICAL, export_features
from anomalake.generators.wearables import write_wearer
from anomalake.loaders.e4 import frames, load_export
from anomalake.replay import wearables_messages
from anomalake.speed.wearables import (
    CONFIRM_WINDOWS,
    WearablesStep,
    confirmed,
    parse_frame,
    score_messages,
)

START = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def _stand_in(rows: pd.DataFrame) -> pd.DataFrame:
    """A stand-in for the champion: tachycardia (class 1) above 120 beats/min."""
    fast = rows["hr_beats"].fillna(0) > 120
    return pd.DataFrame(
        {
            "score": fast.astype(float) * 0.9 + 0.05,
            "prediction": fast,
            "label": ["1" if f else "0" for f in fast],
            "model_name": "stand-in",
            "model_version": "1",
        },
        index=rows.index,
    )


@pytest.fixture(scope="module")
def wearer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One wearer, 40 minutes: tachycardia at rest from 15 to 22, off the wrist 28 to 34."""
    schedule = [("tachycardia_at_rest", 900, 1320), ("off_wrist", 1680, 2040)]
    folder, _, _ = write_wearer(
        tmp_path_factory.mktemp("e4"), "W1", START, 2400, 3, schedule=schedule
    )
    return folder


def _batch(values: list[Any], key: str | None = "W1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "raw_value": values,
            "key": key,
            "topic": "wearables.frames",
            "partition": 0,
            "offset": range(len(values)),
            "kafka_timestamp": None,
        }
    )


def _frame(**changes: Any) -> str:
    doc: dict[str, Any] = {
        "v": 1,
        "device": "W1",
        "time": 1_773_057_600,
        "origin": "replay",
        "acc": [[0, 0, 64]] * 32,
        "bvp": [1.0, -1.0] * 32,
        "eda": [1.0] * 4,
        "temp": [33.0] * 4,
        "hr": [60.0],
        "ibi": [[0.5, 1.0]],
        "tags": [],
    }
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not ...})


def test_a_frame_that_is_not_one_is_quarantined_with_its_reason() -> None:
    poison = {
        _frame(device="W2"): "differs from the record key",
        _frame(time=1_773_057_600.5): "not a whole Unix second",
        _frame(time=1_773_057_600_000): "event time out of range",
        _frame(time="noon"): "not a whole Unix second",
        _frame(acc=[[0, 0, 64]] * 65): "65 acc samples",
        _frame(acc=[[0, 64]]): "not 3 values",
        _frame(bvp=[1.0, True]): "not a number",
        _frame(eda="1.0"): "eda is not a list",
        _frame(temp=...): "missing field temp",
        _frame(hr=[1e300]): "out of range",
        _frame(ibi=[[0.5, -1.0]]): "a beat out of range",
        _frame(ibi=[[0.5]]): "not [offset, interval]",
        _frame(origin="lab"): "unknown origin",
        _frame(v=2): "unsupported schema version",
        '{"v": 1, "device": "W1", "device": "W2"}': "duplicate field",
        "[1, 2]": "not an object",
        "{" * 5000: "malformed JSON",
        _frame(bvp=[1.0] * 2000): "oversized payload",
    }
    for value, reason in poison.items():
        frame, found = parse_frame(value, "W1", 8192)
        assert frame is None and found is not None and reason in found, (reason, found)
    nan = _frame().replace('"eda": [1.0, 1.0, 1.0, 1.0]', '"eda": [1.0, NaN, 1.0, 1.0]')
    assert "not finite" in str(parse_frame(nan, "W1", 8192)[1])
    ok, reason = parse_frame(_frame(eda=[None, 1.0, 1.0, 1.0]), "W1", 8192)
    assert reason is None and ok is not None and ok.time == 1_773_057_600


def test_stream_in_batches_equals_offline_and_the_batch_features(wearer: Path) -> None:
    messages = list(wearables_messages(wearer))
    step = WearablesStep(_stand_in, 8192, None)
    offline = score_messages(messages, step)
    # the stream: the same frames in micro-batches of uneven size, state stored between
    stored, parts, at = None, [], 0
    values = [v.decode() for _, v in messages]
    for size in (1, 7, 300, 61, 999, 5000):
        chunk = _batch(values[at : at + size])
        stored, out = step.run(stored, chunk.assign(offset=chunk["offset"] + at), keyed=True)
        parts.append(out)
        at += size
    rest = _batch(values[at:])
    stored, out = step.run(stored, rest.assign(offset=rest["offset"] + at), keyed=True)
    streamed = pd.concat([*parts, out], ignore_index=True)
    assert len(streamed) == len(offline) == len(messages)
    pd.testing.assert_frame_equal(
        streamed.drop(columns=["topic"]), offline.drop(columns=["topic"]), check_dtype=False
    )
    # the features at the windows' ends are the batch layer's (export_features), exactly
    batch = export_features(frames(load_export(wearer)), 60, 10)
    ends = offline[offline["window_end"].astype(bool)].reset_index(drop=True)
    assert len(ends) == len(batch) > 200
    for name in FEATURES:
        pd.testing.assert_series_equal(
            ends[name].astype(float), batch[name].astype(float), check_names=False
        )


def test_an_episode_fires_its_kind_and_off_the_wrist_is_a_device_notice_only(
    wearer: Path,
) -> None:
    out = score_messages(wearables_messages(wearer), WearablesStep(_stand_in, 8192, None))
    ends = out[out["window_end"].astype(bool)]
    seconds = (ends["event_time"] - pd.Timestamp(START).tz_localize(None)).dt.total_seconds()
    rules = ends["rules"].map(lambda r: tuple(r) if r is not None else ())
    tachy = rules.map(lambda r: MEDICAL[0] in r)
    assert tachy[(seconds > 1000) & (seconds < 1320)].mean() > 0.9
    assert not tachy[seconds < 880].any()
    off = (seconds > 1740) & (seconds < 2040)
    assert (rules[off] == ("device_off_wrist",)).mean() > 0.9
    assert ends.loc[off, "model_name"].isna().all()  # the classifier is never asked
    assert (ends.loc[off, "device_state"] == "off_wrist").mean() > 0.9


def test_late_and_repeated_frames_and_a_frame_the_model_refuses(wearer: Path) -> None:
    values = [v.decode() for _, v in wearables_messages(wearer)][:130]
    shuffled = [*values[:70], values[65], values[70], values[70], *values[71:]]
    step = WearablesStep(_stand_in, 8192, None)
    out = step.run(None, _batch(shuffled), keyed=True)[1]
    assert out["reason"].notna().tolist().count(True) == 2
    assert out.loc[70, "reason"].startswith("out of order")
    assert out.loc[72, "reason"].startswith("repeated second")
    clean = step.run(None, _batch(values), keyed=True)[1]
    kept = out[out["reason"].isna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        kept.drop(columns=["offset"]), clean.drop(columns=["offset"]), check_dtype=False
    )
    # no key: validated, never scored
    unkeyed = step.run(None, _batch(values[:3], key=None), keyed=False)[1]
    assert unkeyed["reason"].str.contains("no record key").all()


def test_a_window_the_model_raises_on_quarantines_only_its_frame(wearer: Path) -> None:
    values = [v.decode() for _, v in wearables_messages(wearer)][:200]

    def refuses_second_window(rows: pd.DataFrame) -> pd.DataFrame:
        scored = _stand_in(rows)
        if len(rows) > 1:
            raise ValueError("a batch of windows fails")
        return scored

    out = WearablesStep(refuses_second_window, 8192, None).run(None, _batch(values), keyed=True)[1]
    assert out["reason"].isna().all()  # one window at a time: every one scores
    ends = out["window_end"].astype(bool)
    assert ends.sum() >= 14 and out.loc[ends, "model_name"].eq("stand-in").all()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.none()
        | st.text(max_size=40)
        | st.dictionaries(
            st.sampled_from(["v", "device", "time", "acc", "bvp", "eda", "temp", "hr", "ibi"]),
            st.none()
            | st.integers()
            | st.floats(allow_nan=True)
            | st.text(max_size=5)
            | st.lists(st.none() | st.floats() | st.lists(st.integers(), max_size=4), max_size=6),
        ).map(json.dumps),
        max_size=12,
    )
)
def test_random_input_never_raises_and_every_record_comes_out_once(values: list[Any]) -> None:
    valid = [_frame(time=1_773_057_600 + i) for i in range(3)]
    batch = _batch([*valid, *values])
    out = WearablesStep(_stand_in, 8192, None).run(None, batch, keyed=True)[1]
    assert out["offset"].tolist() == list(range(len(batch)))
    assert out.loc[:2, "reason"].isna().all()
    for row in out.loc[3:].itertuples():
        assert isinstance(row.reason, str) or row.device == "W1", row


def test_a_kind_fires_from_the_confirming_window_and_a_gap_starts_again() -> None:
    kinds = ["fall", "fall", None, "fall", "fall", "fall", None]
    assert confirmed(0, kinds, 2) == ([False, True, False, False, True, True, False], 0)
    assert confirmed(0, kinds, 3)[0] == [False] * 5 + [True, False]
    assert confirmed(0, kinds, 1)[0] == [k is not None for k in kinds]
    # a streak carried over from the previous micro-batch counts
    assert confirmed(1, ["fever"], 2) == ([True], 2)


def test_the_model_versions_own_confirmation_count_is_used(wearer: Path) -> None:
    def first_fired(confirm: int | None) -> pd.Timestamp:
        def scorer(rows: pd.DataFrame) -> pd.DataFrame:
            return _stand_in(rows).assign(confirm_windows=confirm)

        out = score_messages(wearables_messages(wearer), WearablesStep(scorer, 8192, None))
        fired = out[out["rules"].map(lambda r: r is not None and MEDICAL[0] in list(r))]
        return fired["event_time"].min()

    untagged, six = first_fired(None), first_fired(6)
    assert six - untagged == pd.Timedelta(seconds=10 * (6 - CONFIRM_WINDOWS))
