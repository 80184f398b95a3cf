from __future__ import annotations

import pytest

from anomalake.evaluation.metrics import (
    EventMetrics,
    changepoint_delays,
    event_metrics,
    runs,
)


def _flags(n: int, on: list[int]) -> list[bool]:
    return [i in on for i in range(n)]


def test_runs_of_consecutive_flags() -> None:
    assert runs([]) == []
    assert runs(_flags(8, [0, 1, 4, 7])) == [(0, 1), (4, 4), (7, 7)]


def test_delay_a_missed_event_and_a_multi_row_false_alarm_counted_once() -> None:
    # events at rows 10..19 and 40..49; one row per minute
    flags = _flags(
        70,
        [13, 14, 15]  # inside event 1: detected 3 rows (180 s) after its start
        + [18, 19, 20, 21]  # starts inside event 1 and outlasts it: not a false alarm
        + [25, 26, 27, 28]  # one false alarm of four rows
        + [60],  # one false alarm of one row
    )  # nothing in event 2: missed
    m = event_metrics(flags, [(40, 49), (10, 19)], times=[60.0 * i for i in range(70)])
    first, second = m.events
    assert (first.start, first.detected_at, first.delay_rows, first.delay_seconds) == (
        10,
        13,
        3,
        180.0,
    )
    assert not second.detected and second.delay_rows is None
    assert (m.detected, m.missed, m.alarms, m.false_alarms) == (1, 1, 4, 2)
    assert m.recall == 0.5 and m.missed_rate == 0.5
    assert m.precision == pytest.approx(1 / 3)
    assert m.f1 == pytest.approx(0.4)
    assert m.delays_rows() == [3] and m.delays_seconds() == [180.0]
    assert m.false_alarms_per_day == pytest.approx(2 * 86400 / (69 * 60))


def test_an_alarm_at_the_first_row_of_an_event_has_delay_zero() -> None:
    m = event_metrics(_flags(20, [5, 6]), [(5, 9)])
    assert m.events[0].delay_rows == 0 and m.false_alarms == 0
    assert m.events[0].delay_seconds is None and m.false_alarms_per_day is None


def test_flags_before_ignore_before_do_not_count() -> None:
    # a probationary period of 5 rows: the alarm at rows 2..3 is ignored
    m = event_metrics(_flags(20, [2, 3, 12]), [(10, 14)], ignore_before=5)
    assert m.false_alarms == 0 and m.alarms == 1 and m.events[0].delay_rows == 2


def test_an_alarm_starting_before_an_event_is_false_but_still_detects_it() -> None:
    m = event_metrics(_flags(20, [8, 9, 10, 11]), [(10, 14)])
    assert m.false_alarms == 1 and m.events[0].delay_rows == 0


def test_event_metrics_add_up_over_files() -> None:
    a = event_metrics(_flags(10, [2]), [(2, 3)], times=[float(i) for i in range(10)])
    b = event_metrics(_flags(10, [7]), [(2, 3)], times=[float(i) for i in range(10)])
    total = a + b
    assert isinstance(total, EventMetrics)
    assert (len(total.events), total.detected, total.false_alarms, total.rows) == (2, 1, 1, 20)
    assert total.seconds == 18.0


def test_changepoint_delay_is_the_next_change_of_alarm_state() -> None:
    # change points at 10 (alarm starts at 12), 20 (alarm ends at 23), 40 (nothing after)
    flags = _flags(50, list(range(12, 23)))
    assert changepoint_delays(flags, [20, 10, 40]) == [2, 3, None]
    # an alarm already on at row 0 starts there
    assert changepoint_delays(_flags(5, [0, 1]), [0]) == [0]
