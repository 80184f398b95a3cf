"""One-line summaries of metrics, as the ``eval`` and ``tune`` commands print them."""

from __future__ import annotations

from statistics import mean, median
from typing import Any

from anomalake.evaluation.metrics import EventMetrics, PointMetrics


def duration(seconds: float) -> str:
    """``seconds`` in the largest sensible unit: 42 s, 7.5 min, 3.2 h, 1.5 d."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(seconds) >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def points_line(m: PointMetrics) -> str:
    """Point-wise precision, recall, F1, false- and missed-alarm rates."""
    return (
        f"points: precision {m.precision:.3f}  recall {m.recall:.3f}  F1 {m.f1:.3f}  "
        f"false alarms {100 * m.false_alarm_rate:.1f} %  missed alarms "
        f"{100 * m.missed_alarm_rate:.1f} %"
    )


def events_line(m: EventMetrics, what: str = "events") -> str:
    """Events detected and missed, false alarms, event F1 and the detection delay."""
    per_day = m.false_alarms_per_day
    rate = f" ({per_day:.2f} per day)" if per_day is not None else ""
    text = (
        f"{what}: {m.detected}/{len(m.events)} detected, {m.missed} missed "
        f"(missed-alarm rate {100 * m.missed_rate:.0f} %); {m.false_alarms} false alarms"
        f"{rate} of {m.alarms} alarms; event precision {m.precision:.3f}  recall "
        f"{m.recall:.3f}  F1 {m.f1:.3f}"
    )
    rows, secs = m.delays_rows(), m.delays_seconds()
    if rows:
        text += f"; delay median {median(rows):.0f} rows"
        if secs:
            text += f" ({duration(median(secs))})"
        text += f", mean {mean(rows):.0f} rows"
        if secs:
            text += f" ({duration(mean(secs))})"
    return text


def changepoints_line(delays: list[int | None]) -> str:
    """Change points followed by an alarm starting or ending, and how soon."""
    found = [d for d in delays if d is not None]
    text = f"change points: {len(found)}/{len(delays)} followed by an alarm start or end"
    if found:
        text += f", delay median {median(found):.0f} rows, mean {mean(found):.0f} rows"
    return text


def events_dict(m: EventMetrics) -> dict[str, Any]:
    """The event metrics as JSON-able numbers."""
    rows, secs = m.delays_rows(), m.delays_seconds()
    return {
        "events": len(m.events),
        "detected": m.detected,
        "missed": m.missed,
        "alarms": m.alarms,
        "false_alarms": m.false_alarms,
        "false_alarms_per_day": m.false_alarms_per_day,
        "precision": round(m.precision, 4),
        "recall": round(m.recall, 4),
        "f1": round(m.f1, 4),
        "median_delay_rows": median(rows) if rows else None,
        "median_delay_seconds": median(secs) if secs else None,
        "mean_delay_rows": round(mean(rows), 1) if rows else None,
    }


def points_dict(m: PointMetrics) -> dict[str, Any]:
    """The point metrics as JSON-able numbers."""
    return {
        "tp": m.tp,
        "fp": m.fp,
        "fn": m.fn,
        "tn": m.tn,
        "precision": round(m.precision, 4),
        "recall": round(m.recall, 4),
        "f1": round(m.f1, 4),
        "false_alarm_rate": round(m.false_alarm_rate, 4),
        "missed_alarm_rate": round(m.missed_alarm_rate, 4),
    }
