"""The JSON state round trip every detector shares.

A detector is a dataclass; its state is its fields (numpy arrays as lists, deques as
lists, nested detectors as their own state), minus caches it can rebuild, named in
``_derived``. ``from_state`` is the inverse, so a detector restored mid-stream scores
bit for bit like one that never stopped.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import fields
from typing import Any, ClassVar, Self

import numpy as np


class JsonState:
    """``state()`` / ``from_state()`` for dataclass detectors."""

    _derived: ClassVar[tuple[str, ...]] = ()
    #: field -> detector class of a nested detector
    _nested: ClassVar[dict[str, type[JsonState]]] = {}

    def state(self) -> dict[str, Any]:
        """JSON-able state."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name in self._derived:
                continue
            value = getattr(self, f.name)
            if isinstance(value, JsonState):
                value = value.state()
            elif isinstance(value, np.ndarray | deque):
                value = list(value) if isinstance(value, deque) else value.tolist()
            out[f.name] = value
        return out

    def finite(self) -> bool:
        """Whether every float and array of the state is finite (deques hold inputs: skipped).

        Cheap enough to ask after every update: a few fields and small matrices.
        """
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, float):
                if not math.isfinite(value):
                    return False
            elif isinstance(value, np.ndarray):
                if not np.isfinite(value).all():
                    return False
            elif isinstance(value, JsonState) and not value.finite():
                return False
        return True

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`state`."""
        kinds = {f.name: str(f.type) for f in fields(cls)}  # type: ignore[arg-type]
        values: dict[str, Any] = {}
        for name, value in state.items():
            if name in cls._nested:
                value = cls._nested[name].from_state(value)
            elif value is not None and "ndarray" in kinds[name]:
                value = np.asarray(value, dtype=float)
            elif "deque" in kinds[name]:
                value = deque(value)
            values[name] = value
        return cls(**values)
