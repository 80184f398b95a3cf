"""Kill a streaming job with SIGKILL at arbitrary moments, restart it, let it finish.

The job runs as ``anomalake stream <use case>`` in its own process group (the JVM is a
child of the Python driver), so a kill takes both down at once, as a lost machine would.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from anomalake.stack import VENV_BIN, group_members


def start_job(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``anomalake <args>`` in a new process group, its output appended to ``log``."""
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [str(VENV_BIN / "anomalake"), *args],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def committed_batches(checkpoint: Path) -> int:
    """Micro-batches the query at ``checkpoint`` has committed."""
    commits = checkpoint / "commits"
    return len(list(commits.glob("[0-9]*"))) if commits.exists() else 0


def kill_repeatedly(
    args: list[str], env: dict[str, str], checkpoint: Path, log: Path, kills: int, seed: int
) -> list[dict[str, float]]:
    """Start the job ``kills`` times; each time, once it has committed a batch, SIGKILL it.

    The kill comes 0-3 s after a commit: mid-batch, mid-write or between batches. Returns
    where each kill fell (for assertion messages).
    """
    rng = random.Random(seed)
    done: list[dict[str, float]] = []
    for _ in range(kills):
        proc = start_job(args, env, log)
        committed = committed_batches(checkpoint)
        deadline = time.monotonic() + 180
        while committed_batches(checkpoint) <= committed and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        delay = rng.uniform(0.0, 3.0)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        while group_members(proc.pid):
            time.sleep(0.2)
        done.append({"after_batches": committed_batches(checkpoint), "delay_s": round(delay, 2)})
    return done


def run_to_completion(
    args: list[str], env: dict[str, str], log: Path, finished: Callable[[], bool]
) -> None:
    """Start the job, wait for ``finished``, then stop it gracefully (its SIGTERM handler)."""
    proc = start_job(args, env, log)
    try:
        deadline = time.monotonic() + 300
        while not finished() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(3)
        time.sleep(4)  # a few more (empty) batches: nothing may be added
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            assert proc.wait(90) == 0, log.read_text()[-3000:]
        finally:
            if group_members(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
