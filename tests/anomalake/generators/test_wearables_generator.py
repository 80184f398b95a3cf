"""The wearables generator: E4 exports the loader reads, with ground truth that shows."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalake.generators.wearables import (
    KINDS,
    generate,
    load_labels,
    write_wearables_files,
    write_wearer,
)
from anomalake.loaders.e4 import E4Export, find_exports, load_export

START = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # awake all along
EPISODE = 300
SCHEDULE = [(kind, 900 + 900 * i, 900 + 900 * i + EPISODE) for i, kind in enumerate(KINDS)]


@pytest.fixture(scope="module")
def wearer(tmp_path_factory: pytest.TempPathFactory) -> E4Export:
    """One wearer with one episode of every kind, read back by the loader."""
    out = tmp_path_factory.mktemp("wearables")
    seconds = SCHEDULE[-1][2] + 600
    folder, episodes, _ = write_wearer(out, "W00042", START, seconds, 7, schedule=SCHEDULE)
    assert [e.kind for e in episodes] == list(KINDS)
    return load_export(folder)


def _window(frame: pd.DataFrame, begin: float, end: float) -> pd.DataFrame:
    t0 = START.timestamp()
    return frame[(frame["time"] >= _at(t0 + begin)) & (frame["time"] < _at(t0 + end))]


def _at(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def _span(kind: str) -> tuple[int, int]:
    (begin, end) = next((b, e) for k, b, e in SCHEDULE if k == kind)
    return begin, end


def _rate(wearer: E4Export, begin: float, end: float) -> float:
    """Mean heart rate from the beats (IBI) in a window: beats per minute."""
    ibi = _window(wearer.ibi, begin, end)["ibi_s"]
    return float(60 / ibi.mean())


def _before(kind: str) -> tuple[int, int]:
    begin, _ = _span(kind)
    return begin - 400, begin - 100


def test_it_is_an_e4_export_the_loader_reads(wearer: E4Export) -> None:
    assert wearer.device == "W00042" and wearer.missing == () and wearer.rejected.empty
    seconds = SCHEDULE[-1][2] + 600
    sizes = {name: len(s.data) for name, s in wearer.signals.items()}
    assert sizes == {
        "ACC": 32 * seconds,
        "BVP": 64 * seconds,
        "EDA": 4 * seconds,
        "TEMP": 4 * seconds,
        "HR": seconds - 10,
    }
    # a pressed button marks the start of the acute stress (the wearer's own report)
    assert list(wearer.tags) == [_at(START.timestamp() + _span("acute_stress")[0] + 30)]


def test_heart_episodes_show_in_the_beats(wearer: E4Export) -> None:
    assert _rate(wearer, *_span("tachycardia_at_rest")) > 120
    assert _rate(wearer, *_span("bradycardia")) < 50
    resting = _rate(wearer, *_before("bradycardia"))
    assert 50 < resting < 120

    # irregular rhythm: successive intervals differ several times more than before
    def rmssd(begin: float, end: float) -> float:
        ibi = _window(wearer.ibi, begin, end)["ibi_s"].to_numpy()
        return float(np.sqrt(np.mean(np.diff(ibi) ** 2)))

    assert rmssd(*_span("irregular_rhythm")) > 4 * rmssd(*_before("irregular_rhythm"))


def test_stress_fall_and_temperature_episodes_show_in_their_signals(wearer: E4Export) -> None:
    eda = wearer.signals["EDA"].data
    during = _window(eda, *_span("acute_stress"))["eda"].mean()
    assert during > _window(eda, *_before("acute_stress"))["eda"].mean() + 1.0

    acc = wearer.signals["ACC"].data
    begin, end = _span("fall")
    magnitude = lambda f: np.sqrt((f[["acc_x", "acc_y", "acc_z"]] ** 2).sum(axis=1))  # noqa: E731
    assert magnitude(_window(acc, begin, begin + 1)).max() > 100  # the impact
    assert magnitude(_window(acc, begin + 5, end)).std() < 2  # then lying still

    temp = wearer.signals["TEMP"].data
    for kind, change in (("fever", 1.0), ("hypothermia", -2.0)):
        begin, end = _span(kind)
        last_minute = _window(temp, end - 60, end)["temp"].mean()
        before = _window(temp, *_before(kind))["temp"].mean()
        assert (last_minute - before) * np.sign(change) > abs(change), kind


def test_device_states_are_not_medicine_but_show_as_lost_contact(wearer: E4Export) -> None:
    for kind in ("off_wrist", "signal_loss"):
        begin, end = _span(kind)
        assert _window(wearer.ibi, begin, end).empty, kind  # no beats detected
        assert _window(wearer.signals["EDA"].data, begin + 5, end)["eda"].max() < 0.05, kind
    begin, end = _span("off_wrist")
    assert _window(wearer.signals["TEMP"].data, end - 30, end)["temp"].mean() < 28
    begin, end = _span("signal_loss")  # still on the wrist: still warm
    assert _window(wearer.signals["TEMP"].data, end - 30, end)["temp"].mean() > 30


def test_labels_faults_and_determinism(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    counts = write_wearables_files(one, wearers=2, hours=1.0, seed=3, faults=True)
    write_wearables_files(two, wearers=2, hours=1.0, seed=3, faults=True)

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.csv"))
        }

    assert digest(one) == digest(two)
    labels = load_labels(one)
    assert len(labels) == counts["episodes"] >= 2 and set(labels["device"]) == {"W00001", "W00002"}
    assert set(labels["kind"]) <= set(KINDS) and (labels["end"] > labels["start"]).all()
    assert (labels["start"] >= pd.Timestamp("2026-03-09 06:15", tz="UTC")).all()  # warm-up
    # every damaged row the generator wrote is one the loader rejects, at that line
    faults = pd.read_csv(one / "faults.csv")
    exports = [load_export(p) for p in find_exports(one)]
    rejected = pd.concat([e.rejected.assign(device=e.device) for e in exports])
    assert set(zip(faults["device"], faults["file"], faults["line"], strict=True)) == set(
        zip(rejected["device"], rejected["file"], rejected["line"], strict=True)
    )
    assert "2 E4 exports" in generate(tmp_path / "three", 2, 0.5, 1, False)
