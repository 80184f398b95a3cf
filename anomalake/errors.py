"""Errors that the command line reports as one line naming the cause and the fix."""

from __future__ import annotations


class AnomalakeError(RuntimeError):
    """A failure the user can fix; ``str()`` is a single line with the cause and the fix."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause} — fix: {fix}")
        self.cause = cause
        self.fix = fix
