"""The markets use case's per-symbol step, engine-free: rules A1/A2 over decoded bars.

The generic speed layer (:mod:`spark.streams.speed`) decodes each Kafka record from the
markets spec's fields (prices, volume, symbol, time), then calls :class:`MarketsStep` per
symbol from Spark's state store: valid bars are queued behind the symbol's event-time
watermark (the spec's ``order.lateness_seconds``), evaluated in minute order by the rules
of :mod:`anomalake.detection.markets` and emitted scored; invalid, duplicate and late
records pass through with their reason. The batch layer calls the same step per symbol
from an empty state, flushing at the end.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from anomalake.detection.markets import (
    Columns,
    MarketRuleParams,
    SymbolState,
    accept_columns,
    concat_columns,
    evaluate_columns,
    row_count,
    rule_params,
)
from anomalake.speed.guard import failure_reason, guarded
from anomalake.speed.step import KAFKA_OUTPUT, PANDAS_DTYPES, Detections, EntityStep, columns

if TYPE_CHECKING:
    from anomalake.settings import Settings

PRICE_FIELDS = ("open", "high", "low", "close")
#: A decoded bar (the spec's fields typed, or a reason) and its minute.
VALIDATED = columns(
    ("symbol", "string"),
    ("event_time", "timestamp"),
    ("minute", "bigint"),
    *((p, "double") for p in PRICE_FIELDS),
    ("volume", "bigint"),
    ("schema_version", "int"),
    ("reason", "string"),
    ("raw_value", "string"),
    *KAFKA_OUTPUT,
)
#: A bar through the rules: the decoded bar and the rules' values.
SCORED = (
    *VALIDATED,
    *columns(
        ("prev_close", "double"),
        ("close_change", "double"),
        ("a1", "boolean"),
        ("mean_volume", "double"),
        ("volume_ratio", "double"),
        ("a2", "boolean"),
        ("history_minutes", "int"),
    ),
)
#: The pandas dtype of each SCORED column (strings are objects).
SCORED_DTYPES: dict[str, Any] = {
    c.name: pd.api.types.pandas_dtype(PANDAS_DTYPES[c.type]) for c in SCORED
}
BAR_FIELDS = [c.name for c in VALIDATED]
TIME_COLUMNS = ("event_time", "kafka_timestamp")


def _microseconds(times: Any) -> np.ndarray:
    """Timestamps as naive ``datetime64[ns]`` floored to the microsecond (tz-aware: UTC)."""
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = pd.Series(times).dt.tz_convert(None).to_numpy()
    ns = np.asarray(times, dtype="datetime64[ns]").view(np.int64)
    nat = np.datetime64("NaT", "ns").view(np.int64)
    return np.where(ns == nat, ns, ns // 1000 * 1000).view("datetime64[ns]")


def _typed(values: Any, name: str, n: int) -> Any:
    """Column ``name`` as an array of its :data:`SCORED_DTYPES` dtype (all null if None).

    Spark hands a nullable integer column over as floats when it has nulls (truncated here,
    as ``int()`` would) and timestamps as naive datetimes, to the microsecond.
    """
    dtype = SCORED_DTYPES[name]
    if values is None:
        if not isinstance(dtype, np.dtype):
            mask = np.ones(n, dtype=bool)
            return dtype.construct_array_type()(np.zeros(n, dtype=dtype.numpy_dtype), mask)
        return np.full(n, {"O": None, "M": np.datetime64("NaT")}.get(dtype.kind, np.nan), dtype)
    if name in TIME_COLUMNS:
        return _microseconds(values)
    if values.dtype == dtype:
        return values
    if dtype.kind == "i" and isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        mask = np.isnan(values) if values.dtype.kind == "f" else np.zeros(n, dtype=bool)
        whole = np.trunc(np.where(mask, 0, values)) if values.dtype.kind == "f" else values
        return dtype.construct_array_type()(whole.astype(dtype.numpy_dtype), mask)
    typed = pd.Series(values).astype(dtype)
    return typed.to_numpy() if isinstance(dtype, np.dtype) else typed.array


def _arrival_order(records: pd.DataFrame) -> np.ndarray | None:
    """Positions of ``records`` sorted stably by (partition, offset); None if already so."""
    p, o = records["partition"].to_numpy(), records["offset"].to_numpy()
    if not (p.dtype.kind in "iu" and o.dtype.kind in "iu"):  # maybe nulls: pandas' sort
        keys = records[["partition", "offset"]].reset_index(drop=True)
        return keys.sort_values(["partition", "offset"], kind="stable").index.to_numpy()
    if ((p[1:] > p[:-1]) | ((p[1:] == p[:-1]) & (o[1:] >= o[:-1]))).all():
        return None
    return np.lexsort((o, p))  # stable


def validated_columns(records: pd.DataFrame) -> Columns:
    """The VALIDATED columns of ``records`` in arrival order (partition, offset), typed.

    The bar's ``minute`` (Unix minutes of its event time) is derived here when the decoded
    records do not carry it.
    """
    if "minute" not in records:
        ns = _microseconds(records["event_time"].to_numpy()).view(np.int64)
        missing = ns == np.datetime64("NaT", "ns").view(np.int64)
        minute = pd.arrays.IntegerArray(np.floor_divide(ns, 60_000_000_000), missing)
        records = records.assign(minute=minute)
    order = _arrival_order(records)
    columns: Columns = {}
    for name in BAR_FIELDS:
        col = records[name]
        values = col.to_numpy() if isinstance(col.dtype, np.dtype) else col.array
        values = _typed(values, name, len(records))
        columns[name] = values if order is None else values[order]
    return columns


def scored_output(*parts: Columns) -> pd.DataFrame:
    """Columns of records (and rule columns), one part after the other, as a SCORED frame.

    Columns in SCORED's order and :data:`SCORED_DTYPES`; a column a part lacks is null there.
    """
    nonempty = [p for p in parts if row_count(p)] or [{}]
    typed = [
        {name: _typed(p.get(name), name, row_count(p)) for name in SCORED_DTYPES} for p in nonempty
    ]
    return pd.DataFrame(typed[0] if len(typed) == 1 else concat_columns(typed))


def score_arrivals(
    state: SymbolState,
    arrivals: pd.DataFrame,
    params: MarketRuleParams,
    *,
    keyed: bool = True,
    flush: bool = False,
) -> pd.DataFrame:
    """One symbol's arrivals through the rules: the step the stream and the batch share.

    Records are taken in arrival order (partition, offset); valid bars are queued in
    ``state`` (a duplicate or late bar comes back with its quarantine reason), invalid ones
    pass through with theirs, then every bar that is final is evaluated (all of them when
    ``flush``). ``keyed`` is false for records without a symbol (they cannot be queued).

    Returns:
        A frame of the SCORED schema (:func:`scored_output`): the records not queued, in
        arrival order, then the bars evaluated, in minute order.
    """
    records = validated_columns(arrivals)
    passed = pd.notna(records["reason"]) | (not keyed)
    # a bar without its minute, close or volume cannot be evaluated: refuse it here, not
    # when it is evaluated (a later micro-batch, where no record is to blame)
    missing = ~passed & (
        pd.isna(records["minute"]) | pd.isna(records["close"]) | pd.isna(records["volume"])
    )
    if missing.any():
        reason = records["reason"].copy()
        reason[missing] = "incomplete bar: minute, close or volume is null"
        records = {**records, "reason": reason}
        passed = passed | missing
    if keyed and not passed.all():
        queued = ~passed
        bars = records if queued.all() else {k: v[queued] for k, v in records.items()}
        reasons = accept_columns(state, bars)
        refused = pd.notna(reasons)
        if refused.any():
            where = np.flatnonzero(queued)[refused]
            reason, raw_value = records["reason"].copy(), records["raw_value"].copy()
            reason[where] = reasons[refused]
            raw_value[where] = None
            records = {**records, "reason": reason, "raw_value": raw_value}
            passed[where] = True
    rejected = {k: v[passed] for k, v in records.items()} if passed.any() else {}
    return scored_output(rejected, evaluate_columns(state, params, flush=flush))


def guarded_arrivals(
    stored: str | None,
    arrivals: pd.DataFrame,
    params: MarketRuleParams,
    *,
    keyed: bool = True,
    flush: bool = False,
) -> tuple[SymbolState, pd.DataFrame]:
    """:func:`score_arrivals` from the stored state, such that no record stops the stream.

    Through :func:`anomalake.speed.guard.guarded`: if the batch fails, its records are
    taken one by one and one that fails is quarantined (:func:`unscorable`) without
    changing the symbol's state.
    """
    return guarded(
        stored,
        arrivals,
        restore=lambda text: SymbolState.from_json(text) if text else SymbolState(),
        dump=lambda state: state.to_json(),
        step=lambda state, records: score_arrivals(state, records, params, keyed=keyed),
        reject=unscorable,
        finish=(
            (lambda state: scored_output(evaluate_columns(state, params, flush=True)))
            if flush
            else None
        ),
    )


def unscorable(record: pd.DataFrame, error: BaseException) -> pd.DataFrame:
    """A record the step could not take, as a SCORED row with the error as its reason.

    Its fields are kept as JSON text in ``raw_value``; one that does not fit its column is
    null there.
    """
    fields = {n: record[n].iloc[0] for n in BAR_FIELDS if n in record and n != "raw_value"}
    text = json.dumps({k: v for k, v in fields.items() if k != "reason"}, default=str)
    columns: Columns = {}
    for name in BAR_FIELDS:
        try:
            columns[name] = _typed(record[name].to_numpy() if name in record else None, name, 1)
        except Exception:  # noqa: BLE001 - a value that does not fit its column
            columns[name] = _typed(None, name, 1)
    columns["reason"] = np.array([failure_reason(error)], dtype=object)
    columns["raw_value"] = np.array([text[:4096]], dtype=object)
    return scored_output(columns)


#: How the state of a symbol whose pending bars were flushed is stored: the next
#: timeout, a whole ``state_ttl`` later with no bar in between, drops the state.
IDLE = "idle "


class MarketsStep(EntityStep):
    """Rules A1/A2 per symbol (:func:`guarded_arrivals`); a silent symbol is flushed, then dropped.

    A symbol idle for ``flush_after_ms`` has its pending bars evaluated (the timeout);
    idle for ``ttl_ms`` more, its state is dropped, so the state store holds only symbols
    heard from lately.
    """

    entity = "symbol"
    group_by = "symbol"
    decoded = True
    orders = ("reorder",)
    columns = SCORED
    detections = Detections(
        flags={"A1": "a1", "A2": "a2"},
        details=(
            "open",
            "high",
            "low",
            "close",
            "volume",
            "prev_close",
            "close_change",
            "mean_volume",
            "volume_ratio",
        ),
    )

    def __init__(self, params: MarketRuleParams, flush_after_ms: int, ttl_ms: int) -> None:
        self.params = params
        self.flush_after_ms = flush_after_ms
        self.ttl_ms = ttl_ms

    @classmethod
    def from_settings(
        cls, settings: Settings, stream: str | None = None, model: Any = None
    ) -> MarketsStep:
        """The step the markets spec and settings describe."""
        del stream, model
        m = settings.markets
        return cls(
            rule_params(m), int(m.flush_after_seconds * 1000), int(m.state_ttl_seconds * 1000)
        )

    def run(
        self, stored: str | None, records: pd.DataFrame, *, keyed: bool, flush: bool = False
    ) -> tuple[str | None, pd.DataFrame]:
        """:func:`guarded_arrivals` from the stored state (an idle symbol's, too)."""
        if stored is not None and stored.startswith(IDLE):
            stored = stored[len(IDLE) :]
        state, out = guarded_arrivals(stored, records, self.params, keyed=keyed, flush=flush)
        return (state.to_json() if keyed else None), out

    def timeout_ms(self) -> int:
        """A symbol idle this long has its pending bars evaluated."""
        return self.flush_after_ms

    def on_timeout(self, stored: str | None) -> tuple[str | None, pd.DataFrame | None, int | None]:
        """Flush the pending bars and mark the state idle; idle for the TTL too: drop it."""
        if stored is not None and stored.startswith(IDLE):
            return None, None, None  # flushed, then silent for the whole ttl: dropped
        state = SymbolState.from_json(stored) if stored else SymbolState()
        scored = evaluate_columns(state, self.params, flush=True)
        out = scored_output(scored) if row_count(scored) else None
        return IDLE + state.to_json(), out, self.ttl_ms
