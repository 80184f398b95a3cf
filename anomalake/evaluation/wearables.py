"""Event metrics of the wearables step on labelled generated wearers, and on real exports.

:func:`evaluate` replays the exports' frames through the stream's own step
(:func:`anomalake.speed.wearables.score_messages`, the same per-device code the speed
layer runs) and reads its window rows as alarms:

* an **episode** (a labelled medical one) is detected when a medical rule fires on a
  window ending between its start and one window after its end (that window still
  holds it); its delay runs from its start to that window's end;
* an **alarm** is a run of windows with a medical rule fired, runs less than
  ``merge_seconds`` apart counted as one (the alert lifecycle folds them into one open
  alert); it is **false** when it starts outside every medical episode;
* **device notices** (off the wrist, no signal) are scored the same way against the
  device-state labels, separately: they are never medical alarms.

On an unlabelled export (the real E4 sample) there is nothing to detect: the report
gives the alarms and notices per hour of wear.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from anomalake.detection.wearables import DEVICE, MEDICAL
from anomalake.evaluation.metrics import EventMetrics, event_metrics
from anomalake.speed.wearables import DEVICE_RULES

#: Alarms this close together are one alert (the lifecycle's default suppression).
MERGE_SECONDS = 300.0


@dataclass
class WearablesReport:
    """Per kind, the episodes' outcomes; overall, the alarms and the time covered."""

    medical: EventMetrics = field(default_factory=EventMetrics)
    device: EventMetrics = field(default_factory=EventMetrics)
    by_kind: dict[str, EventMetrics] = field(default_factory=dict)
    wearer_hours: float = 0.0
    frames: int = 0
    quarantined: int = 0

    @property
    def false_alarms_per_wearer_day(self) -> float | None:
        """Medical false alarms per 24 h of one wearer."""
        return self.medical.false_alarms * 24.0 / self.wearer_hours if self.wearer_hours else None

    def alarms_per_hour(self) -> tuple[float, float]:
        """(medical alarms, device notices) per hour of wear."""
        hours = self.wearer_hours or float("nan")
        return self.medical.alarms / hours, self.device.alarms / hours


def bridged(flags: Sequence[bool], gap_rows: int) -> list[bool]:
    """``flags`` with gaps of at most ``gap_rows`` unflagged rows between flags filled."""
    out = list(flags)
    last = None
    for i, flag in enumerate(flags):
        if flag:
            if last is not None and 0 < i - last - 1 <= gap_rows:
                out[last + 1 : i] = [True] * (i - last - 1)
            last = i
    return out


def _events(
    times: pd.Series, episodes: pd.DataFrame, window_seconds: int
) -> list[tuple[int, int, str, float]]:
    """(first row, last row, kind, start in Unix seconds) of each episode over window rows."""
    out = []
    for e in episodes.itertuples():
        inside = (times >= e.start) & (times < e.end + pd.Timedelta(seconds=window_seconds))
        rows = inside.to_numpy().nonzero()[0]
        if len(rows):
            start = pd.Timestamp(e.start).value / 1e9
            out.append((int(rows[0]), int(rows[-1]), str(e.kind), start))
    return out


def device_metrics(
    windows: pd.DataFrame,
    labels: pd.DataFrame,
    kinds: Iterable[str],
    fired: Sequence[bool],
    window_seconds: int,
    step_seconds: int,
) -> tuple[EventMetrics, dict[str, EventMetrics]]:
    """One device's window rows against its labelled episodes of ``kinds``."""
    times = windows["event_time"].reset_index(drop=True)
    mine = labels[labels["kind"].isin(list(kinds))]
    events = sorted(_events(times, mine, window_seconds))
    seconds = times.astype("int64").to_numpy() / 1e9
    flags = bridged(fired, int(MERGE_SECONDS // step_seconds))
    # bridging must not lengthen a detection backwards: delays use the rule's own rows
    spans = [(a, b) for a, b, _, _ in events]
    overall = event_metrics(flags, spans, list(seconds))
    exact = event_metrics(list(fired), spans, list(seconds))
    outcomes = []
    by_kind: dict[str, EventMetrics] = {}
    for (_, _, kind, start), outcome in zip(events, exact.events, strict=True):
        # the delay runs from the episode's start, not from the first window after it
        at = outcome.detected_at
        outcome = replace(outcome, delay_seconds=None if at is None else seconds[at] - start)
        outcomes.append(outcome)
        by_kind[kind] = by_kind.get(kind, EventMetrics()) + EventMetrics((outcome,))
    return (
        EventMetrics(tuple(outcomes), overall.alarms, overall.false_alarms, len(flags), 0.0),
        by_kind,
    )


def naive_utc(labels: pd.DataFrame | None) -> pd.DataFrame:
    """Labels with UTC times without a zone, as the step's ``event_time`` (none if None)."""
    if labels is None:
        return pd.DataFrame(columns=["device", "start", "end", "kind"])
    out = labels.copy()
    for column in ("start", "end"):
        at = pd.to_datetime(out[column], utc=True)
        out[column] = at.dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def evaluate(
    scored: pd.DataFrame,
    labels: pd.DataFrame | None,
    window_seconds: int,
    step_seconds: int,
) -> WearablesReport:
    """A report of the step's output rows (``score_messages``) against ``labels``."""
    report = WearablesReport()
    report.frames = int(scored["reason"].isna().sum())
    report.quarantined = int(scored["reason"].notna().sum())
    accepted = scored[scored["reason"].isna()]
    labels = naive_utc(labels)
    device_rules = set(DEVICE_RULES.values())
    for device, rows in accepted.groupby("device", sort=True):
        report.wearer_hours += len(rows) / 3600.0
        windows = rows[rows["window_end"].fillna(False).astype(bool)].sort_values("event_time")
        rules = [list(r) if r is not None else [] for r in windows["rules"]]
        own = labels[labels["device"] == device]
        medical, kinds = device_metrics(
            windows,
            own,
            MEDICAL,
            [any(r in MEDICAL for r in fired) for fired in rules],
            window_seconds,
            step_seconds,
        )
        notices, device_kinds = device_metrics(
            windows,
            own,
            DEVICE,
            [any(r in device_rules for r in fired) for fired in rules],
            window_seconds,
            step_seconds,
        )
        report.medical = report.medical + medical
        report.device = report.device + notices
        for kind, m in (kinds | device_kinds).items():
            report.by_kind[kind] = report.by_kind.get(kind, EventMetrics()) + m
    return report


def report_lines(report: WearablesReport, labelled: bool) -> list[str]:
    """The report as the CLI prints it."""
    medical_rate, device_rate = report.alarms_per_hour()
    lines = [
        f"{report.frames} frames scored ({report.wearer_hours:.1f} wearer-hours), "
        f"{report.quarantined} quarantined",
    ]
    if not labelled:
        lines.append(
            f"unlabelled: {report.medical.alarms} medical alarms ({medical_rate:.2f} per hour), "
            f"{report.device.alarms} device notices ({device_rate:.2f} per hour)"
        )
        return lines
    for kind in (*MEDICAL, *DEVICE):
        m = report.by_kind.get(kind)
        if m is None or not m.events:
            continue
        delays = sorted(m.delays_seconds())
        after = f", median delay {delays[len(delays) // 2]:.0f} s" if delays else ""
        lines.append(f"  {kind:<20} {m.detected}/{len(m.events)} detected{after}")
    m, per_day = report.medical, report.false_alarms_per_wearer_day
    delays = sorted(m.delays_seconds())
    median = delays[len(delays) // 2] if delays else float("nan")
    lines.append(
        f"medical episodes: {m.detected}/{len(m.events)} detected ({100 * m.recall:.1f} %), "
        f"median delay {median:.0f} s; {m.false_alarms} false alarms of {m.alarms} "
        f"({per_day if per_day is not None else float('nan'):.2f} per wearer-day)"
    )
    d = report.device
    lines.append(
        f"device states: {d.detected}/{len(d.events)} noticed; {d.false_alarms} notices "
        f"outside them of {d.alarms}"
    )
    return lines


def as_dict(report: WearablesReport) -> dict[str, Any]:
    """The report's figures, JSON-able."""
    return {
        "frames": report.frames,
        "quarantined": report.quarantined,
        "wearer_hours": report.wearer_hours,
        "medical_detected": report.medical.detected,
        "medical_episodes": len(report.medical.events),
        "false_alarms": report.medical.false_alarms,
        "false_alarms_per_wearer_day": report.false_alarms_per_wearer_day,
        "by_kind": {
            k: {"detected": m.detected, "episodes": len(m.events), "delays": m.delays_seconds()}
            for k, m in report.by_kind.items()
        },
    }
