"""No record can stop the hosts step: poison records and random input (hypothesis)."""

from __future__ import annotations

import json

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomalake.loaders.toniot import LAYOUTS, TEXT_COLUMNS
from anomalake.speed.hosts import type_and_score

ACTIVITY = "process"


def _score(typed: pd.DataFrame) -> pd.DataFrame:
    """A stand-in for the champion that raises on one value, as a model may on any input."""
    if typed.select_dtypes("number").eq(1313.0).any().any():
        raise ValueError("the model refuses 1313")
    return pd.DataFrame(
        {"score": 0.5, "prediction": False, "model_name": "m", "model_version": "1"},
        index=typed.index,
    )


def _batch(values: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "raw_value": values,
            "topic": "hosts.process",
            "partition": 0,
            "offset": range(len(values)),
        }
    )


def _event(**changes: object) -> str:
    doc: dict[str, object] = {"host": "h1", "ts": 1_700_000_000, "PID": 42, "label": 0}
    doc.update(dict.fromkeys(LAYOUTS[ACTIVITY], "1"))
    doc.update(changes)
    return json.dumps(doc)


def test_poison_events_are_quarantined_with_their_reason_and_the_rest_scored() -> None:
    poison = {
        _event(ts=1_700_000_000_000): "out of range (milliseconds where seconds are meant?)",
        _event(ts=-62135596800): "out of range",
        _event(PID=2**70): "is not a process id",
        _event(PID="9" * 400): "is not a process id",
        _event(host=""): "is not an entity id",
        _event(host="  "): "is not an entity id",
        _event(host={"a": 1}): "is not an entity id",
        "[" * 3000: "malformed JSON",
        "not json": "malformed JSON",
    }
    values = [_event(), *poison, _event(ts=1_700_000_001)]
    out = type_and_score(_batch(values), ACTIVITY, _score)
    assert out["offset"].tolist() == list(range(len(values)))
    for n, reason in enumerate(poison.values(), start=1):
        assert reason in out.loc[n, "reason"], (reason, out.loc[n, "reason"])
    assert out.loc[[0, len(values) - 1], "reason"].isna().all()
    assert out.loc[[0, len(values) - 1], "score"].tolist() == [0.5, 0.5]


def test_a_value_the_model_raises_on_quarantines_that_event_only() -> None:
    first = next(c for c in LAYOUTS[ACTIVITY] if c not in TEXT_COLUMNS)
    values = [_event(), _event(**{first: "1313"}), _event()]
    out = type_and_score(_batch(values), ACTIVITY, _score)
    assert out["reason"].isna().tolist() == [True, False, True]
    assert out.loc[1, "reason"].startswith("could not be scored: ValueError")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.none()
        | st.text(max_size=60)
        | st.dictionaries(
            st.sampled_from(["host", "ts", "PID", "label", *LAYOUTS[ACTIVITY][:3]]),
            st.none()
            | st.integers()
            | st.integers(min_value=2**63, max_value=10**50)
            | st.floats()
            | st.text(max_size=10)
            | st.lists(st.integers(), max_size=2),
        ).map(json.dumps),
        min_size=1,
        max_size=25,
    )
)
def test_random_events_never_raise_and_each_comes_out_once(values: list[str | None]) -> None:
    out = type_and_score(_batch(values), ACTIVITY, _score)
    assert sorted(out["offset"]) == list(range(len(values)))
    assert out.loc[out["reason"].isna(), "score"].eq(0.5).all()
