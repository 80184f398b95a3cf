"""No record can stop a stream: a failing batch is retried record by record.

Every per-entity step runs through :func:`guarded`. The fast path takes the whole batch.
If it raises, the entity's state is restored from what was stored before the batch and
the records are taken one at a time: one that fails is handed to ``reject`` (which gives
it its quarantine reason) and the state is put back as it was before that record, so a
rejected record never changes an entity's state, and the records around it are scored
as they would have been.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import pandas as pd

log = logging.getLogger(__name__)
S = TypeVar("S")


def failure_reason(error: BaseException) -> str:
    """The quarantine reason of a record the step could not take."""
    return f"could not be scored: {type(error).__name__}: {str(error)[:200]}"


def guarded(
    stored: str | None,
    records: pd.DataFrame,
    *,
    restore: Callable[[str | None], S],
    dump: Callable[[S], str],
    step: Callable[[S, pd.DataFrame], pd.DataFrame],
    reject: Callable[[pd.DataFrame, BaseException], pd.DataFrame],
    finish: Callable[[S], pd.DataFrame] | None = None,
) -> tuple[S, pd.DataFrame]:
    """``step(state, records)`` from the ``stored`` state, falling back record by record.

    Args:
        stored: the entity's state as stored (``dump``'s text), or None for a new entity.
        records: the batch, in the order the step wants them.
        restore: state from stored text (None: a fresh state).
        dump: a state as text.
        step: scores records into the state; returns its output frame.
        reject: the output frame of one record that ``step`` raised on.
        finish: run once after the records, on either path (a flush).

    Returns:
        The state after the batch and the output frame.
    """
    state = restore(stored)
    try:
        out = step(state, records)
        if finish is not None:
            out = _concat([out, finish(state)])
        return state, out
    except Exception as exc:  # any failure: retry record by record
        log.warning("a batch of %d records failed (%r); taking them one by one", len(records), exc)
    state = restore(stored)
    parts = []
    for i in range(len(records)):
        record = records.iloc[i : i + 1]
        snapshot = dump(state)
        try:
            parts.append(step(state, record))
        except Exception as exc:  # the record is quarantined with the error
            state = restore(snapshot)
            parts.append(reject(record, exc))
    if finish is not None:
        try:
            parts.append(finish(state))
        except Exception as exc:  # no record to blame: the batch leaves the state as it was
            log.warning("the batch's final step failed (%r); quarantining the batch", exc)
            state = restore(stored)
            parts = [reject(records.iloc[i : i + 1], exc) for i in range(len(records))]
    return state, _concat(parts)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The non-empty parts one after the other (an empty frame if there are none)."""
    kept = [p for p in parts if len(p)]
    if not kept:
        return parts[0] if parts else pd.DataFrame()
    return kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True)
