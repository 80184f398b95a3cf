"""Held-out tuning: choose a detector and threshold on half the files, report on the rest.

The split is :func:`anomalake.evaluation.split.split_names` (a stable hash of each file's
name, stratified by folder), so the same folder always gives the same halves. Each
configuration of a small fixed grid is scored on the tuning half only; the best one's
threshold is fixed there and applied, unchanged, to the test half. For reference the
chosen configuration is also scored on all files with its threshold chosen on all of them:
that figure is in-sample and is labelled so everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anomalake.detection.registry import describe, scorer
from anomalake.errors import AnomalakeError
from anomalake.evaluation import nab_corpus, skab
from anomalake.evaluation.metrics import EventMetrics, PointMetrics
from anomalake.evaluation.nab import PROFILES
from anomalake.evaluation.report import events_dict, points_dict
from anomalake.evaluation.split import split_names

SPLIT_METHOD = (
    "per folder, files ordered by the first 64 bits of SHA-256 of their relative name; "
    "1st, 3rd, ... to tuning, 2nd, 4th, ... to test"
)

Echo = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Outcome:
    """Point metrics, event metrics and change-point delays (SKAB only) at one threshold."""

    points: PointMetrics
    events: EventMetrics
    changepoints: list[int | None] | None = None


@dataclass(frozen=True)
class Tuned:
    """A tuning run: the JSON-able report :func:`save` writes, and the metrics behind it."""

    report: dict[str, Any]
    held_out: Outcome
    in_sample: Outcome


def nab_grid() -> list[dict[str, Any]]:
    """EWMA bands and rolling z-scores, each raw or through a peak filter; two combinations."""
    bases: list[dict[str, Any]] = [
        *({"kind": "ewma", "alpha": a, "warmup": 50} for a in (0.002, 0.01, 0.05)),
        *({"kind": "rolling_z", "window": w, "warmup": 50} for w in (300, 1000, 3000)),
    ]
    grid: list[dict[str, Any]] = []
    for base in bases:
        grid.append(base)
        grid += [{"kind": "peak", "window": w, "of": base} for w in (30, 100, 300)]
    ewma = {"kind": "ewma", "alpha": 0.01, "warmup": 50}
    rolling = {"kind": "rolling_z", "window": 1000, "warmup": 50}
    grid.append(
        {
            "kind": "combine",
            "how": "max",
            "parts": [{"kind": "peak", "window": 100, "of": d} for d in (ewma, rolling)],
        }
    )
    grid.append(
        {
            "kind": "peak",
            "window": 100,
            "of": {"kind": "combine", "how": "max", "parts": [ewma, rolling]},
        }
    )
    return grid


# SKAB's two temperature sensors drift as the rig warms up during a run.
SKAB_DRIFTING = ["Temperature", "Thermocouple"]


def skab_grid() -> list[dict[str, Any]]:
    """Hotelling T² and MEWMA (warm-up 300/400), on all sensors or without the drifting ones."""
    grid: list[dict[str, Any]] = []
    for exclude in ([], SKAB_DRIFTING):
        for warmup in (300, 400):
            grid.append(
                {"detector": {"kind": "hotelling_t2", "warmup": warmup}, "exclude": exclude}
            )
            grid += [
                {"detector": {"kind": "mewma_t2", "warmup": warmup, "lam": lam}, "exclude": exclude}
                for lam in (0.5, 0.2, 0.1)
            ]
        mewma = {"kind": "mewma_t2", "warmup": 400, "lam": 0.2}
        grid.append({"detector": {"kind": "hold", "window": 30, "of": mewma}, "exclude": exclude})
    return grid


def tune_nab(root: Path, grid: list[dict[str, Any]] | None = None, echo: Echo = _quiet) -> Tuned:
    """Choose the grid's best detector by NAB standard score on the tuning half; test it.

    Returns the JSON-able report that :func:`save` writes and ``eval nab --config`` reads.
    """
    corpus = nab_corpus.load_corpus(root)
    tune_names, test_names = split_names([f.name for f in corpus])
    tune = [f for f in corpus if f.name in set(tune_names)]
    test = [f for f in corpus if f.name in set(test_names)]
    if not tune or not test:
        raise AnomalakeError(f"{root}: too few files to split", "needs at least two files")
    echo(
        f"split of {len(corpus)} files: {len(tune)} to tune "
        f"({sum(len(f.windows) for f in tune)} windows), {len(test)} to test "
        f"({sum(len(f.windows) for f in test)} windows)"
    )
    echo("grid, each scored on the tuning half only (NAB standard, threshold chosen there):")
    tried: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, tuple[float, float]]] | None = None
    for i, config in enumerate(grid or nab_grid()):
        results = nab_corpus.optimise(tune, nab_corpus.score_corpus(tune, scorer(config)))
        standard = results["standard"][1]
        tried.append({"detector": config, "name": describe(config), "tuning_standard": standard})
        echo(f"  {standard:7.1f}  {describe(config)}")
        if best is None or standard > best[0]:
            best = (standard, i, results)
    assert best is not None
    chosen = tried[best[1]]["detector"]
    thresholds = {p: best[2][p][0] for p in PROFILES}
    make = scorer(chosen)
    test_scores = nab_corpus.score_corpus(test, make)
    held_out = nab_corpus.at_thresholds(test, test_scores, thresholds)
    points, events = nab_corpus.detections(test, test_scores, thresholds["standard"])
    all_scores = nab_corpus.score_corpus(corpus, make)
    everything = nab_corpus.optimise(corpus, all_scores)
    all_points, all_events = nab_corpus.detections(corpus, all_scores, everything["standard"][0])
    report = {
        "dataset": "nab",
        "data": str(root),
        "detector": chosen,
        "name": describe(chosen),
        "thresholds": thresholds,
        "split": {"method": SPLIT_METHOD, "tuning": tune_names, "test": test_names},
        "tuning": {p: best[2][p][1] for p in PROFILES},
        "held_out": {
            **held_out,
            "points_at_standard_threshold": points_dict(points),
            "events_at_standard_threshold": events_dict(events),
        },
        "in_sample_all_files": {
            **{p: {"threshold": t, "score": s} for p, (t, s) in everything.items()},
            "points_at_standard_threshold": points_dict(all_points),
            "events_at_standard_threshold": events_dict(all_events),
        },
        "grid": tried,
    }
    return Tuned(report, Outcome(points, events), Outcome(all_points, all_events))


def tune_skab(root: Path, grid: list[dict[str, Any]] | None = None, echo: Echo = _quiet) -> Tuned:
    """Choose the grid's best detector and threshold by point-wise F1 on the tuning runs."""
    runs = skab.labelled_runs(root)
    names = {skab.run_name(p): p for p in runs}
    tune_names, test_names = split_names(list(names))
    if not tune_names or not test_names:
        raise AnomalakeError(f"{root}: too few runs to split", "needs at least two runs")
    tune = [names[n] for n in tune_names]
    test = [names[n] for n in test_names]
    echo(f"split of {len(runs)} runs: {len(tune)} to tune, {len(test)} to test")
    echo("grid, each scored on the tuning runs only (point-wise F1 at the best threshold there):")
    tried: list[dict[str, Any]] = []
    best: tuple[float, int, float] | None = None
    for i, entry in enumerate(grid or skab_grid()):
        scored = skab.score_runs(tune, scorer(entry["detector"]), entry.get("exclude"))
        threshold, metrics = skab.best_f1_threshold(scored)
        name = _skab_name(entry)
        tried.append({**entry, "name": name, "tuning_f1": metrics.f1, "threshold": threshold})
        echo(f"  F1 {metrics.f1:.3f}  (threshold {threshold:.10g})  {name}")
        if best is None or metrics.f1 > best[0]:
            best = (metrics.f1, i, threshold)
    assert best is not None
    chosen = tried[best[1]]
    make, exclude, threshold = scorer(chosen["detector"]), chosen.get("exclude"), best[2]
    points, events, delays = skab.run_metrics(skab.score_runs(test, make, exclude), threshold)
    everything = skab.score_runs(runs, make, exclude)
    all_threshold, all_points = skab.best_f1_threshold(everything)
    _, all_events, all_delays = skab.run_metrics(everything, all_threshold)
    report = {
        "dataset": "skab",
        "data": str(root),
        "detector": chosen["detector"],
        "exclude": exclude or [],
        "name": chosen["name"],
        "threshold": threshold,
        "split": {"method": SPLIT_METHOD, "tuning": tune_names, "test": test_names},
        "tuning": {"f1": best[0]},
        "held_out": {
            "points": points_dict(points),
            "events": events_dict(events),
            "changepoint_delays": delays,
        },
        "in_sample_all_runs": {
            "threshold": all_threshold,
            "points": points_dict(all_points),
            "events": events_dict(all_events),
            "changepoint_delays": all_delays,
        },
        "grid": tried,
    }
    return Tuned(
        report, Outcome(points, events, delays), Outcome(all_points, all_events, all_delays)
    )


def _skab_name(entry: dict[str, Any]) -> str:
    exclude = entry.get("exclude") or []
    suffix = f" without {', '.join(exclude)}" if exclude else " on all sensors"
    return describe(entry["detector"]) + suffix


def save(report: dict[str, Any], path: Path) -> None:
    """Write a tuning report (the chosen configuration and its figures) as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def load(path: Path, dataset: str) -> dict[str, Any]:
    """Read a configuration written by :func:`save` for ``dataset`` (``nab`` or ``skab``)."""
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AnomalakeError(
            f"cannot read {path}: {exc}", "pass a file `anomalake tune` wrote"
        ) from None
    if not isinstance(config, dict) or "detector" not in config:
        raise AnomalakeError(f"{path}: no detector", "pass a file `anomalake tune` wrote")
    if config.get("dataset", dataset) != dataset:
        raise AnomalakeError(
            f"{path} was tuned on {config['dataset']}, not {dataset}", "pass the matching file"
        )
    scorer(config["detector"])
    return config
