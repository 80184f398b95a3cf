"""The part of Spark's ``GroupState`` the state functions use, for tests without Spark."""

from __future__ import annotations

from typing import Any


class FakeGroupState:
    """A state store entry: value, timeout flag and duration, removal."""

    def __init__(self) -> None:
        self.value: tuple[Any, ...] | None = None
        self.hasTimedOut = False
        self.timeout_ms: int | None = None

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> tuple[Any, ...]:
        assert self.value is not None
        return self.value

    def update(self, value: tuple[Any, ...]) -> None:
        assert isinstance(value[0], str)
        self.value = value

    def setTimeoutDuration(self, ms: int) -> None:  # noqa: N802 - Spark's name
        assert ms > 0
        self.timeout_ms = ms

    def remove(self) -> None:
        self.value = None
