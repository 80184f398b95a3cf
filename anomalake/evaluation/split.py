"""Deterministic, stratified split of a data set's files into a tuning and a test half."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence


def stable_hash(name: str) -> int:
    """A hash of ``name`` that is the same on every machine and run (SHA-256, 64 bits)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def folder(name: str) -> str:
    """The first path component of a relative name: NAB's category, SKAB's folder."""
    return name.split("/", 1)[0] if "/" in name else ""


def split_names(
    names: Sequence[str], group: Callable[[str], str] = folder
) -> tuple[list[str], list[str]]:
    """(tuning, test): within each group, names ordered by :func:`stable_hash` alternate.

    The first, third, ... name of each group goes to tuning, the others to test, so each
    group is split in half (tuning gets the odd one out). The result depends only on the
    names: adding a file to one group never moves a file of another group.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for name in sorted(set(names)):
        groups[group(name)].append(name)
    tune: list[str] = []
    test: list[str] = []
    for key in sorted(groups):
        ordered = sorted(groups[key], key=lambda n: (stable_hash(n), n))
        tune += ordered[0::2]
        test += ordered[1::2]
    return sorted(tune), sorted(test)
