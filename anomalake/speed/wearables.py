"""The wearables use case's per-device step, engine-free: E4 frames -> windows -> episodes.

A record is one frame: one device-second of every signal (:func:`anomalake.loaders.e4.frames`,
sent by ``anomalake replay wearables``). :class:`WearablesStep` keeps each device's last
``window_seconds`` of frames, summarised (:class:`anomalake.detection.wearables.Windows`),
and every ``step_seconds`` computes the window's features with the one feature function
training, batch and evaluation use. A window then reads as:

* a **device state** (:func:`anomalake.detection.wearables.device_state`): off the wrist,
  or no signal — data quality, rule ``device_<state>``, never a medical alert and never
  scored by the classifier (it cannot judge a body it does not touch);
* else the **episode classifier** (``models:/<prefix>wearables-episodes@champion``, handed
  in by the engine, hot-reloaded): the most likely class, a medical episode kind (rule
  ``<kind>``, scored by the probability of anything but normal) or normal.

Every frame comes out once: scored (features only on the frames a window ends at) or
quarantined with its reason. The stream calls the step per device from Spark's state
store; :func:`score_messages` calls it per device offline (evaluation), so the same
episodes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from anomalake.detection.wearables import (
    FEATURES,
    MEDICAL,
    Windows,
    device_state,
    summarise,
)
from anomalake.producer import SCHEMA_VERSION
from anomalake.speed.guard import failure_reason, guarded
from anomalake.speed.records import (
    KAFKA_COLUMNS,
    envelope_problems,
    epoch_seconds,
    event_time_problems,
    json_object,
)
from anomalake.speed.step import KAFKA_OUTPUT, Detections, EntityStep, columns
from anomalake.usecases.spec import RecordLimits

if TYPE_CHECKING:
    from anomalake.settings import Settings

#: Features of window rows -> ``score``, ``prediction``, ``label`` (the class, as text),
#: ``model_name``, ``model_version`` (:meth:`ml.serving.ChampionModel.score`).
Scorer = Callable[[pd.DataFrame], pd.DataFrame]
#: Sampled signals of a frame: (samples a second at most, values per sample).
SIGNALS = {"acc": (64, 3), "bvp": (128, 1), "eda": (8, 1), "temp": (8, 1), "hr": (2, 1)}
REQUIRED = ("acc", "bvp", "eda", "temp")
#: The rule a device state fires, and its alert severity.
DEVICE_RULES = {"off_wrist": "device_off_wrist", "signal_loss": "device_signal_loss"}
DEVICE_SEVERITY = "low"
#: Windows in a row the classifier must find abnormal before its kind fires (one window
#: alone, 10 s, is too little to call a caregiver for), unless the model version says
#: otherwise (its operating point chosen at training, :class:`ml.serving.LoadedModel`).
CONFIRM_WINDOWS = 2
COUNTS = ("acc", "bvp", "eda", "temp", "ibi", "tags")

SCORED = columns(
    ("device", "string"),
    ("event_time", "timestamp"),
    ("origin", "string"),
    *((f"{name}_n", "int") for name in COUNTS),
    ("window_end", "boolean"),
    *((name, "double") for name in FEATURES),
    ("device_state", "string"),
    ("kind", "string"),
    ("score", "double"),
    ("rules", "array<string>"),
    ("model_name", "string"),
    ("model_version", "string"),
    ("reason", "string"),
    ("raw_value", "string"),
    *KAFKA_OUTPUT,
)
COLUMNS = tuple(c.name for c in SCORED)


@dataclass(frozen=True)
class Frame:
    """A valid frame: its device, second, origin and samples."""

    device: str
    time: int
    origin: str
    doc: dict[str, Any]


def _number_problem(value: Any, limit: float) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"not a number: {str(value)[:20]!r}"
    if not math.isfinite(value):
        return "not finite"
    if abs(value) > limit:
        return f"out of range: {str(value)[:20]}"
    return None


def _signal_problem(name: str, values: Any, limit: float) -> str | None:
    most, width = SIGNALS[name]
    if not isinstance(values, list):
        return f"{name} is not a list"
    if len(values) > most:
        return f"{len(values)} {name} samples in one second (at most {most})"
    for value in values:
        if value is None:
            continue
        parts = value if width > 1 else [value]
        if width > 1 and (not isinstance(value, list) or len(value) != width):
            return f"an {name} sample is not {width} values: {str(value)[:30]}"
        for part in parts:
            problem = _number_problem(part, limit)
            if problem:
                return f"{name}: {problem}"
    return None


def _beats_problem(beats: Any) -> str | None:
    if not isinstance(beats, list) or len(beats) > 8:
        return "ibi is not a list of at most 8 beats"
    for beat in beats:
        if not isinstance(beat, list) or len(beat) != 2:
            return f"a beat is not [offset, interval]: {str(beat)[:30]}"
        if any(_number_problem(x, 1e6) for x in beat):
            return f"a beat is not two numbers: {str(beat)[:30]}"
        if not (0 <= beat[0] < 1 and 0 < beat[1] <= 60):
            return f"a beat out of range (offset in [0, 1) s, interval in (0, 60] s): {beat}"
    return None


def parse_frame(
    raw: str | None,
    key: str | None,
    max_payload_bytes: int,
    limits: RecordLimits | None = None,
    kafka_time: float | None = None,
) -> tuple[Frame | None, str | None]:
    """A Kafka value as a :class:`Frame`, or None and every reason it is not one."""
    limits = limits or RecordLimits()
    doc, reason = json_object(raw, max_payload_bytes)
    if doc is None:
        return None, reason
    problems = envelope_problems(doc, "device", key, SCHEMA_VERSION, limits)
    second = doc.get("time")
    if second is None:
        problems.append("missing field time")
    elif _number_problem(second, 1e18) or float(second) != int(second):
        problems.append(f"time is not a whole Unix second: {str(second)[:30]!r}")
    else:
        problems += event_time_problems(float(second), second, limits, kafka_time)
    for name in SIGNALS:
        if name not in doc and name in REQUIRED:
            problems.append(f"missing field {name}")
        elif name in doc:
            problem = _signal_problem(name, doc[name], limits.max_abs_value)
            if problem:
                problems.append(problem)
    if "ibi" in doc:
        problem = _beats_problem(doc["ibi"])
        if problem:
            problems.append(problem)
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or len(tags) > 16 or any(_number_problem(t, 1) for t in tags):
        problems.append("tags is not a list of offsets within the second")
    if problems:
        return None, "; ".join(problems)
    assert second is not None
    return Frame(doc["device"], int(second), str(doc.get("origin", "live")), doc), None


class DeviceState:
    """Per device: its window of summaries, frames taken, and windows found abnormal in a row."""

    def __init__(self, windows: Windows, frames: int = 0, streak: int = 0) -> None:
        self.windows, self.frames, self.streak = windows, frames, streak

    def to_json(self) -> str:
        """Serialise for the state store."""
        doc = {"w": self.windows.state(), "n": self.frames, "s": self.streak}
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, window_seconds: int, step_seconds: int, text: str | None) -> DeviceState:
        """Restore from :meth:`to_json` (a fresh state for None or empty text)."""
        if not text:
            return cls(Windows(window_seconds, step_seconds))
        doc = json.loads(text)
        windows = Windows.from_state(window_seconds, step_seconds, doc["w"])
        return cls(windows, doc["n"], doc.get("s", 0))


def _empty_row(record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update({k: record.get(k) for k in KAFKA_COLUMNS})
    return row


def score_frames(
    state: DeviceState | None,
    records: pd.DataFrame,
    score: Scorer | None,
    max_payload_bytes: int,
    limits: RecordLimits | None = None,
) -> pd.DataFrame:
    """One device's records (``raw_value``, key and the Kafka columns) in offset order.

    Each valid frame goes into the device's window; at a window's end its features are
    computed and read as a device state or, failing that, scored by ``score`` (one call
    for the batch's windows). ``state`` None (no key): frames are validated, none scored.
    """
    rows, windows, ended = [], [], []
    for record in records.to_dict("records"):
        row = _empty_row(record)
        rows.append(row)
        frame, reason = parse_frame(
            record["raw_value"],
            record.get("key"),
            max_payload_bytes,
            limits,
            epoch_seconds(record.get("kafka_timestamp")),
        )
        last = state.windows.last if state is not None else None
        if frame is not None and state is None:
            reason = "no record key: frames are keyed by device"
        elif frame is not None and last is not None and frame.time <= last:
            order = "repeated second" if frame.time == last else "out of order"
            reason = f"{order}: not after the device's last frame"
        if frame is None or reason is not None or state is None:
            row.update(reason=reason, raw_value=record["raw_value"])
            continue
        row.update(
            device=frame.device,
            event_time=pd.Timestamp(frame.time, unit="s"),
            origin=frame.origin,
            **{f"{n}_n": len(frame.doc.get(n) or ()) for n in COUNTS},
            window_end=False,
        )
        summary = summarise({**frame.doc, "time": frame.time})
        state.frames += 1
        if state.windows.push(summary):
            features = state.windows.end_window()
            row.update(window_end=True, **features)
            ended.append(row)
            found = device_state(features)
            row["device_state"] = found or "worn"
            if found:
                row.update(kind=found, rules=[DEVICE_RULES[found]])
            else:
                windows.append(row)
    confirm = CONFIRM_WINDOWS
    if windows and score is not None:
        scored = score(pd.DataFrame([{f: w[f] for f in FEATURES} for w in windows]))
        for row, s in zip(windows, scored.to_dict("records"), strict=True):
            kind: str | None = _kind(s.get("label")) if s["prediction"] else None
            row.update(
                score=float(s["score"]),
                kind=kind,
                model_name=s["model_name"],
                model_version=s["model_version"],
            )
        tagged = s.get("confirm_windows")
        confirm = int(tagged) if tagged is not None and not pd.isna(tagged) else confirm
    if state is not None:
        worn = [row["device_state"] == "worn" for row in ended]
        fired, state.streak = confirmed(
            state.streak,
            [row["kind"] if w else None for row, w in zip(ended, worn, strict=True)],
            confirm,
        )
        for row, w, f in zip(ended, worn, fired, strict=True):
            if w:
                row["rules"] = [row["kind"]] if f else []
    return pd.DataFrame.from_records(rows, columns=list(COLUMNS))


def confirmed(
    streak: int, kinds: Iterable[str | None], confirm_windows: int
) -> tuple[list[bool], int]:
    """Which of a device's windows, in order, fire their kind; and the streak after them.

    ``kinds``: each window's abnormal kind, None for a normal window or one in a device
    state (either ends a streak). A kind fires from the ``confirm_windows``-th abnormal
    window in a row on; ``streak`` is how many the windows before ended with. Training
    chooses ``confirm_windows`` with this same function (:func:`ml.wearables.operating_point`).
    """
    fired = []
    for kind in kinds:
        streak = streak + 1 if kind else 0
        fired.append(streak >= confirm_windows)
    return fired, streak


def _kind(label: Any) -> str:
    """The medical kind of a classifier's class (1..7; 0 is normal)."""
    index = int(label)
    return MEDICAL[index - 1] if 1 <= index <= len(MEDICAL) else f"class_{index}"


class WearablesStep(EntityStep):
    """Per device: frames -> windows -> device state or episode (:func:`score_frames`)."""

    entity = "device"
    orders = ("strictly_increasing",)
    columns = SCORED

    def __init__(
        self,
        score: Scorer | None,
        max_payload_bytes: int,
        limits: RecordLimits | None,
        window_seconds: int = 60,
        step_seconds: int = 10,
        ttl_ms: int | None = None,
    ) -> None:
        self.score = score
        self.max_payload_bytes = max_payload_bytes
        self.limits = limits
        self.window_seconds, self.step_seconds = window_seconds, step_seconds
        self.ttl_ms = ttl_ms
        self.detections = Detections(
            score="score",
            rules="rules",
            rule_severity=dict.fromkeys(DEVICE_RULES.values(), DEVICE_SEVERITY),
            details=(
                "kind",
                "device_state",
                "score",
                "hr_beats",
                "activity",
                "model_name",
                "model_version",
                "topic",
                "partition",
                "offset",
            ),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, stream: str | None = None, model: Any = None
    ) -> WearablesStep:
        """The step the wearables spec describes, scoring with ``model`` (the champion)."""
        del stream
        w = settings.wearables
        return cls(
            model,
            w.max_payload_bytes,
            w.limits,
            w.window_seconds,
            w.step_seconds,
            int(w.state_ttl_seconds * 1000),
        )

    def run(
        self, stored: str | None, records: pd.DataFrame, *, keyed: bool, flush: bool = False
    ) -> tuple[str | None, pd.DataFrame]:
        """:func:`score_frames` from the stored state; a frame it raises on is quarantined."""
        del flush

        def restore(text: str | None) -> DeviceState | None:
            if not keyed:
                return None
            return DeviceState.from_json(self.window_seconds, self.step_seconds, text)

        def reject(record: pd.DataFrame, error: BaseException) -> pd.DataFrame:
            row = _empty_row(record.iloc[0].to_dict())
            row.update(reason=failure_reason(error), raw_value=record["raw_value"].iloc[0])
            return pd.DataFrame.from_records([row], columns=list(COLUMNS))

        state, out = guarded(
            stored,
            records.sort_values(["partition", "offset"], kind="stable"),
            restore=restore,
            dump=lambda s: s.to_json() if s is not None else "",
            step=lambda s, part: score_frames(
                s, part, self.score, self.max_payload_bytes, self.limits
            ),
            reject=reject,
        )
        return (state.to_json() if state is not None else None), out

    def timeout_ms(self) -> int | None:
        """A device silent for the state TTL is dropped."""
        return self.ttl_ms


def score_messages(
    messages: Iterable[tuple[str | None, bytes]], step: WearablesStep
) -> pd.DataFrame:
    """Offline: the replay's messages through the stream's step, per device, no Kafka or Spark."""
    frame = pd.DataFrame(
        [
            {
                "key": k,
                "raw_value": v.decode(errors="replace"),
                "topic": "",
                "partition": 0,
                "offset": n,
                "kafka_timestamp": None,
            }
            for n, (k, v) in enumerate(messages)
        ],
        columns=["key", "raw_value", "topic", "partition", "offset", "kafka_timestamp"],
    )
    parts = [
        step.run(None, group, keyed=isinstance(key, str))[1]
        for key, group in frame.groupby("key", sort=True, dropna=False)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(COLUMNS))
