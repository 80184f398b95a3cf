"""Synthetic Linux host activity in the ToN-IoT layouts (atop memory and process samples).

One row every ``interval`` seconds, each the sample of one process, as in the ToN-IoT Linux
files. Normal rows come from a pool of desktop and server processes (names and PIDs as in
the public sample) with per-process memory and scheduling profiles and heavy-tailed noise.
Attack rows come in episodes (contiguous runs of rows of one attack type, spread over the
whole time range so that a split by time sees attacks on both sides) and shift the
distributions the way the attack would:

* ``dos``/``ddos``: a flooded service faults pages, grows and runs hot (``MINFLT``, ``RGROW``,
  ``CPU``, ``TRUN`` up, state ``R``);
* ``scanning``: many short-lived new processes (status ``NE``, small resident size);
* ``password``: new ``sshd``/``login`` processes, mildly busy;
* ``injection``/``xss``: web and database processes with moderately raised counters;
* ``backdoor``: a shell or ``nc`` listening, small and new;
* ``ransomware``: major faults and CPU from encrypting files;
* ``mitm``: a spoofing tool with many voluntary sleeps.

A quarter of attack rows keep a normal profile (the attack is quiet in that sample), and
attack processes are half the time named like normal services, so the classes overlap the
way real data does. Attack processes get fresh, higher PIDs (which is why models must not use
``PID``). Memory and process files generated with the same seed share the attack schedule.
Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from anomalake.loaders.toniot import LAYOUTS

ATTACK_TYPES: tuple[str, ...] = (
    "ddos",
    "dos",
    "scanning",
    "password",
    "injection",
    "xss",
    "backdoor",
    "ransomware",
    "mitm",
)
FILE_NAMES: dict[str, str] = {"memory": "linux_memory1.csv", "process": "linux_process_1.csv"}
DEFAULT_START = datetime(2019, 4, 2, 15, 28, 35, tzinfo=UTC)
TOTAL_MEMORY_KIB = 4 * 1024 * 1024
_QUIET_SHARE = 0.25
_TOOL_SHARE = 0.5


@dataclass(frozen=True)
class Process:
    """A normal process: name, PID and the centres of its memory and scheduling profile."""

    cmd: str
    pid: int
    weight: float
    minflt: float
    rsize_kib: float
    vsize_mib: float
    vstext: int
    sleeps: int
    cpu: float
    nice: int = 0


NORMAL_PROCESSES: tuple[Process, ...] = (
    Process("Web-Content", 3257, 8, 400_000, 400_000, 2600, 193, 23, 0.08),
    Process("firefox", 3197, 8, 250_000, 380_000, 2400, 193, 60, 0.06),
    Process("Xorg", 1442, 6, 60_000, 290_000, 764, 2219, 1, 0.05),
    Process("compiz", 2774, 5, 48_000, 88_000, 1300, 10, 8, 0.04),
    Process("nautilus", 2797, 4, 70_000, 110_000, 1400, 1350, 5, 0.02),
    Process("mysqld", 1483, 5, 9_000, 54_000, 537, 10415, 17, 0.02),
    Process("apache2", 1935, 6, 3_000, 14_000, 184, 596, 1, 0.01),
    Process("sshd", 1210, 3, 1_500, 6_000, 65, 780, 1, 0.005),
    Process("bash", 3300, 3, 2_000, 5_000, 22, 980, 1, 0.005),
    Process("named", 1482, 2, 8_000, 31_700, 392, 531, 7, 0.01),
    Process("update-manager", 3119, 2, 68_000, 116_000, 726, 3063, 3, 0.01, 10),
    Process("gnome-terminal", 3155, 3, 6_000, 19_500, 708, 280, 4, 0.01),
    Process("pulseaudio", 2736, 2, 1_600, 5_900, 365, 77, 3, 0.01, -11),
    Process("tracker-miner-", 2798, 2, 3_200, 11_400, 466, 114, 4, 0.01, 19),
    Process("NetworkManager", 1124, 2, 1_800, 7_100, 342, 1071, 4, 0.005),
    Process("vmtoolsd", 2809, 2, 4_600, 16_900, 381, 36, 3, 0.01),
)

# Attack-specific tool names (the other half of attack rows borrow a service's name).
ATTACK_TOOLS: dict[str, tuple[str, ...]] = {
    "ddos": ("hping3", "slowloris"),
    "dos": ("hping3", "perl"),
    "scanning": ("nmap", "sh"),
    "password": ("hydra", "login"),
    "injection": ("php", "sh"),
    "xss": ("php", "python3"),
    "backdoor": ("nc", "python"),
    "ransomware": ("python3", "openssl"),
    "mitm": ("ettercap", "arpspoof"),
}
ATTACK_TARGETS: dict[str, tuple[str, ...]] = {
    "ddos": ("apache2", "mysqld"),
    "dos": ("apache2", "sshd"),
    "scanning": ("sshd", "bash"),
    "password": ("sshd",),
    "injection": ("apache2", "mysqld"),
    "xss": ("apache2",),
    "backdoor": ("bash",),
    "ransomware": ("bash", "nautilus"),
    "mitm": ("NetworkManager",),
}


def _rng(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, salt])


def attack_schedule(
    n_rows: int, attack_fraction: float, seed: int = 0, mean_episode: int = 20
) -> np.ndarray:
    """Per row, ``'normal'`` or the attack type of the episode the row is in.

    Exactly ``round(n_rows * attack_fraction)`` rows are attacks, in episodes of about
    ``mean_episode`` rows separated by random gaps of normal rows.
    """
    if not 0.0 <= attack_fraction < 1.0:
        raise ValueError(f"attack_fraction must be in [0, 1), got {attack_fraction}")
    rng = _rng(seed, 0)
    n_attack = round(n_rows * attack_fraction)
    types = np.full(n_rows, "normal", dtype=object)
    if n_attack == 0:
        return types
    episodes = max(1, min(n_attack, round(n_attack / mean_episode)))
    lengths = 1 + rng.multinomial(n_attack - episodes, np.full(episodes, 1.0 / episodes))
    gap_total = n_rows - n_attack
    gaps = rng.multinomial(gap_total, rng.dirichlet(np.full(episodes + 1, 2.0)))
    pos = 0
    for k in range(episodes):
        pos += int(gaps[k])
        kind = ATTACK_TYPES[int(rng.integers(len(ATTACK_TYPES)))]
        types[pos : pos + int(lengths[k])] = kind
        pos += int(lengths[k])
    return types


def _normal_processes(rng: np.random.Generator, n: int) -> list[Process]:
    weights = np.array([p.weight for p in NORMAL_PROCESSES], dtype=float)
    picks = rng.choice(len(NORMAL_PROCESSES), size=n, p=weights / weights.sum())
    return [NORMAL_PROCESSES[i] for i in picks]


def _base_rows(
    schedule: np.ndarray, seed: int, salt: int
) -> tuple[np.random.Generator, list[Process], np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the process profile, whether it shows the attack, its name and PID."""
    rng = _rng(seed, salt)
    n = len(schedule)
    procs = _normal_processes(rng, n)
    attack = schedule != "normal"
    loud = attack & (rng.random(n) >= _QUIET_SHARE)
    cmd = np.array([p.cmd for p in procs], dtype=object)
    pid = np.array([p.pid for p in procs], dtype=np.int64)
    by_name = {p.cmd: p for p in NORMAL_PROCESSES}
    next_pid = 4000
    for i in np.flatnonzero(attack):
        kind = str(schedule[i])
        if rng.random() < _TOOL_SHARE:
            cmd[i] = ATTACK_TOOLS[kind][int(rng.integers(len(ATTACK_TOOLS[kind])))]
            pid[i] = next_pid
            next_pid += int(rng.integers(1, 40))
        else:
            target = by_name[ATTACK_TARGETS[kind][int(rng.integers(len(ATTACK_TARGETS[kind])))]]
            procs[i] = target
            cmd[i] = target.cmd
            pid[i] = target.pid if rng.random() < 0.5 else next_pid
            next_pid += int(rng.integers(1, 40))
    return rng, procs, loud, cmd, pid


def _frame_start(schedule: np.ndarray, start: datetime, interval: int) -> pd.DataFrame:
    ts = pd.to_datetime(int(start.timestamp()) + interval * np.arange(len(schedule)), unit="s")
    return pd.DataFrame({"ts": ts.tz_localize("UTC")})


def _labels(frame: pd.DataFrame, schedule: np.ndarray) -> pd.DataFrame:
    frame["label"] = (schedule != "normal").astype("int8")
    frame["type"] = schedule.astype(str)
    return frame


def _factor(kind: np.ndarray, loud: np.ndarray, table: dict[str, float]) -> np.ndarray:
    """Per row, the multiplier the row's attack type applies to a metric (1 when quiet)."""
    return np.array([table.get(str(k), 1.0) if q else 1.0 for k, q in zip(kind, loud, strict=True)])


def generate_memory(
    n_rows: int,
    *,
    seed: int = 0,
    attack_fraction: float = 0.1,
    start: datetime = DEFAULT_START,
    interval: int = 5,
) -> pd.DataFrame:
    """Memory samples typed as :func:`anomalake.loaders.toniot.load_toniot` returns them."""
    schedule = attack_schedule(n_rows, attack_fraction, seed)
    rng, procs, loud, cmd, pid = _base_rows(schedule, seed, salt=1)
    centre = np.array([p.minflt for p in procs])
    minflt = rng.lognormal(np.log(centre), 0.7) * _factor(
        schedule,
        loud,
        {"ddos": 12, "dos": 8, "ransomware": 3, "injection": 2.5, "xss": 2, "scanning": 0.2},
    )
    majflt = rng.poisson(
        np.sqrt(centre) / 20 * _factor(schedule, loud, {"ransomware": 40, "ddos": 3, "dos": 3})
    )
    rsize = rng.lognormal(np.log([p.rsize_kib for p in procs]), 0.35) * _factor(
        schedule,
        loud,
        {"ddos": 4, "dos": 3, "ransomware": 2, "scanning": 0.15, "backdoor": 0.1, "mitm": 0.5},
    )
    vsize = np.array([p.vsize_mib for p in procs]) * rng.normal(1.0, 0.03, n_rows)
    vsize *= _factor(schedule, loud, {"ddos": 1.8, "dos": 1.5, "scanning": 0.3, "backdoor": 0.2})
    grew = rng.random(n_rows) < 0.5
    vgrow = np.where(grew, vsize, rng.normal(0.0, 0.01, n_rows) * vsize)
    rgrow = np.where(grew, rsize, rng.normal(0.0, 0.02, n_rows) * rsize)
    rgrow = np.where(loud & np.isin(schedule, ["ddos", "dos", "ransomware"]), rsize, rgrow)
    frame = _frame_start(schedule, start, interval)
    frame["PID"] = pd.array(pid, dtype="Int64")
    frame["MINFLT"] = np.round(minflt).astype(float)
    frame["MAJFLT"] = majflt.astype(float)
    frame["VSTEXT"] = np.array([float(p.vstext) for p in procs])
    frame["VSIZE"] = np.round(vsize, 1)
    frame["RSIZE"] = np.round(rsize, 1)
    frame["VGROW"] = np.round(vgrow, 1)
    frame["RGROW"] = np.round(rgrow, 1)
    frame["MEM"] = np.round(np.minimum(rsize / TOTAL_MEMORY_KIB, 1.0), 2)
    frame["CMD"] = cmd.astype(str)
    return _labels(frame, schedule)


def generate_process(
    n_rows: int,
    *,
    seed: int = 0,
    attack_fraction: float = 0.1,
    start: datetime = DEFAULT_START,
    interval: int = 5,
) -> pd.DataFrame:
    """Process (scheduling) samples typed as :func:`load_toniot` returns them."""
    schedule = attack_schedule(n_rows, attack_fraction, seed)
    rng, procs, loud, cmd, pid = _base_rows(schedule, seed, salt=2)
    hot = loud & np.isin(schedule, ["ddos", "dos", "ransomware"])
    trun = np.where(hot, rng.integers(1, 5, n_rows), (rng.random(n_rows) < 0.05).astype(int))
    sleeps = rng.poisson(
        np.array([p.sleeps for p in procs], dtype=float)
        * _factor(schedule, loud, {"mitm": 8, "password": 3, "ddos": 4, "injection": 2})
    )
    nice = np.array([p.nice for p in procs])
    cpu = rng.exponential(np.array([p.cpu for p in procs])) * _factor(
        schedule,
        loud,
        {"ddos": 25, "dos": 20, "ransomware": 30, "scanning": 5, "password": 4, "mitm": 6},
    )
    new = loud & np.isin(schedule, ["scanning", "password", "backdoor", "injection"])
    status = np.where(
        new,
        np.where(rng.random(n_rows) < 0.6, "NE", "N"),
        np.where(rng.random(n_rows) < 0.9, "N", "-"),
    )
    exc = np.where(status == "NE", rng.integers(0, 2, n_rows), 0)
    state = np.where(hot | (rng.random(n_rows) < 0.03), "R", "S")
    frame = _frame_start(schedule, start, interval)
    frame["PID"] = pd.array(pid, dtype="Int64")
    frame["TRUN"] = trun.astype(float)
    frame["TSLPI"] = sleeps.astype(float)
    frame["TSLPU"] = (rng.random(n_rows) < 0.01).astype(float)
    frame["POLI"] = np.where(rng.random(n_rows) < 0.02, "batch", "norm").astype(object)
    frame["NICE"] = nice.astype(float)
    frame["PRI"] = (120 + nice).astype(float)
    frame["RTPR"] = 0.0
    frame["CPUNR"] = rng.integers(0, 4, n_rows).astype(float)
    frame["Status"] = status.astype(object)
    frame["EXC"] = exc.astype(float)
    frame["State"] = state.astype(object)
    frame["CPU"] = np.round(np.minimum(cpu, 1.0), 2)
    frame["CMD"] = cmd.astype(str)
    return _labels(frame, schedule)


GENERATORS = {"memory": generate_memory, "process": generate_process}


def _text(values: pd.Series) -> pd.Series:
    """Numbers as the export writes them: integers without a decimal point."""
    if pd.api.types.is_float_dtype(values):
        return values.map(lambda v: str(int(v)) if float(v).is_integer() else repr(float(v)))
    return values.astype(str)


def to_export(frame: pd.DataFrame, activity: str, label_column: str = "label") -> pd.DataFrame:
    """The typed frame as export text: ``ts`` in Unix seconds, the label named ``label_column``."""
    out = pd.DataFrame({"ts": (frame["ts"].astype("int64") // 10**9).astype(str)})
    out["PID"] = frame["PID"].astype(str)
    for col in LAYOUTS[activity]:
        out[col] = _text(frame[col])
    out[label_column] = frame["label"].astype(int).astype(str)
    out["type"] = frame["type"].astype(str)
    return out


def write_host_files(
    out_dir: Path,
    n_rows: int,
    *,
    seed: int = 0,
    attack_fraction: float = 0.1,
    start: datetime = DEFAULT_START,
    activities: tuple[str, ...] = ("memory", "process"),
    label_column: str = "label",
) -> dict[str, Path]:
    """Write one ToN-IoT-layout CSV per activity (``linux_memory1.csv``, ...); returns the paths.

    Args:
        out_dir: folder to write to (created).
        n_rows: rows per file (one every 5 s).
        seed: makes the output deterministic; both files share the attack schedule.
        attack_fraction: share of rows labelled as attacks.
        start: time of the first row.
        activities: which layouts to write (``memory``, ``process``).
        label_column: ``label`` or ``attack``, the two names the releases use.
    """
    if label_column not in ("label", "attack"):
        raise ValueError(f"label_column must be 'label' or 'attack', got {label_column!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for activity in activities:
        frame = GENERATORS[activity](
            n_rows, seed=seed, attack_fraction=attack_fraction, start=start
        )
        path = out_dir / FILE_NAMES[activity]
        to_export(frame, activity, label_column).to_csv(path, index=False)
        paths[activity] = path
    return paths


#: Seconds between two rows of a generated ToN-IoT file.
ROW_SECONDS = 5


def generate(out: Path, entities: int, hours: float, seed: int, faults: bool) -> str:
    """The use case's generator (``anomalake generate hosts``): ToN-IoT files per host.

    One file per host and activity (``host<N>_<activity>.csv``: the host is the file's
    stem), a row every 5 s, labelled attacks in the ``label`` column. There are no faults
    to add: ``faults`` is refused.
    """
    if faults:
        raise ValueError("the hosts generator writes no faulty rows (no --faults)")
    n_rows = max(1, int(hours * 3600 / ROW_SECONDS))
    out.mkdir(parents=True, exist_ok=True)
    for k in range(entities):
        for activity, path in write_host_files(
            out / f".host{k + 1}", n_rows, seed=seed + k
        ).items():
            path.rename(out / f"host{k + 1}_{activity}.csv")
        (out / f".host{k + 1}").rmdir()
    return f"wrote {entities} hosts x {len(FILE_NAMES)} activities ({n_rows} rows each) to {out}"
