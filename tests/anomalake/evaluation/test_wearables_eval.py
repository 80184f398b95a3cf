"""Wearables event metrics: episodes, merged alarms and device notices, counted by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from anomalake.evaluation.wearables import bridged, evaluate, report_lines

T0 = pd.Timestamp("2026-03-09 12:00:00")


def test_bridged_fills_short_gaps_only() -> None:
    flags = [True, False, False, True, False, False, False, True]
    assert bridged(flags, 2) == [True, True, True, True, False, False, False, True]
    assert bridged(flags, 3) == [True] * 8
    assert bridged([False, True, False], 5) == [False, True, False]


def _scored(fired: dict[int, list[str]], seconds: int = 7200) -> pd.DataFrame:
    """One wearer's frames, a window ending every 10 s, rules fired at the given seconds."""
    rows = []
    for s in range(seconds):
        end = (s + 1) % 10 == 0
        rows.append(
            {
                "device": "W1",
                "event_time": T0 + pd.Timedelta(seconds=s),
                "window_end": end,
                "rules": fired.get(s, []) if end else None,
                "reason": None,
            }
        )
    rows.append({"device": None, "event_time": None, "window_end": None, "reason": "bad"})
    return pd.DataFrame(rows)


def test_episodes_false_alarms_and_device_notices_are_counted_as_people_see_them() -> None:
    labels = pd.DataFrame(
        {
            "device": ["W1", "W1", "W1"],
            "start": [T0 + pd.Timedelta(seconds=s) for s in (1000, 3000, 6000)],
            "end": [T0 + pd.Timedelta(seconds=s) for s in (1400, 3300, 6300)],
            "kind": ["tachycardia_at_rest", "fall", "off_wrist"],
        }
    )
    labels["start"] = labels["start"].dt.tz_localize("UTC")  # as load_labels gives them
    labels["end"] = labels["end"].dt.tz_localize("UTC")
    fired = {s: ["tachycardia_at_rest"] for s in range(1029, 1400, 10)}
    # a false alarm of three windows, and another 200 s later: one alert, one false alarm
    fired |= {s: ["bradycardia"] for s in (5009, 5019, 5029, 5229)}
    # a window ending 50 s after the episode still holds it: not false
    fired |= {1449: ["tachycardia_at_rest"]}
    fired |= {s: ["device_off_wrist"] for s in range(6059, 6300, 10)}
    report = evaluate(_scored(fired), labels, window_seconds=60, step_seconds=10)
    assert (report.frames, report.quarantined, report.wearer_hours) == (7200, 1, 2.0)
    tachy, fall = report.by_kind["tachycardia_at_rest"], report.by_kind["fall"]
    assert (tachy.detected, tachy.delays_seconds()) == (1, [29.0])
    assert (fall.detected, len(fall.events)) == (0, 1)
    m = report.medical
    assert (m.detected, len(m.events), m.alarms, m.false_alarms) == (1, 2, 2, 1)
    assert report.false_alarms_per_wearer_day == pytest.approx(12.0)
    d = report.device
    assert (d.detected, len(d.events), d.false_alarms) == (1, 1, 0)
    assert report.by_kind["off_wrist"].delays_seconds() == [59.0]
    lines = "\n".join(report_lines(report, labelled=True))
    assert "medical episodes: 1/2 detected (50.0 %)" in lines and "12.00 per wearer-day" in lines


def test_unlabelled_exports_report_rates_per_hour() -> None:
    report = evaluate(_scored({99: ["fever"], 4099: ["device_signal_loss"]}), None, 60, 10)
    assert (report.medical.alarms, report.device.alarms) == (1, 1)
    assert report.alarms_per_hour() == (0.5, 0.5)
    assert "1 medical alarms (0.50 per hour)" in report_lines(report, labelled=False)[1]
