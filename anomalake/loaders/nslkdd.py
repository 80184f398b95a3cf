"""Read NSL-KDD network-connection records (``KDDTrain+_20Percent.txt``, ``KDDTest+.txt``, ...).

Each line of the ``.txt`` files is one connection: the 41 features named in the data set's
``Field Names.csv`` (three symbolic: ``protocol_type``, ``service``, ``flag``; the rest
numeric, ``land``/``logged_in``/``is_host_login``/``is_guest_login`` as 0/1 integers), then
the class name (``normal`` or an attack such as ``neptune``) and a difficulty level (how many
of 21 reference learners classified the record correctly; a label-derived annotation that
must never be a model input). The files have no header line.

:func:`load_nslkdd` returns the typed records plus ``attack`` (``class != 'normal'``) and
``family`` (``dos``, ``probe``, ``r2l``, ``u2r``, ``normal``, or ``unknown`` for attack types
that ``Attack Types.csv`` does not list: the 17 types that appear only in the test files).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from anomalake.errors import AnomalakeError

FEATURES: tuple[str, ...] = (
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)
SYMBOLIC: tuple[str, ...] = ("protocol_type", "service", "flag")
# Rates in [0, 1]; every other numeric feature is a non-negative count or 0/1 flag.
RATES: tuple[str, ...] = tuple(f for f in FEATURES if f.endswith("_rate"))
LABELS: tuple[str, ...] = ("class", "difficulty")
COLUMNS: tuple[str, ...] = (*FEATURES, *LABELS)

# The standard file names of the distribution.
FILES: dict[str, str] = {
    "train": "KDDTrain+_20Percent.txt",
    "test": "KDDTest+.txt",
    "test21": "KDDTest-21.txt",
}

# ``Attack Types.csv`` of the distribution: attack class -> family.
FAMILIES: dict[str, str] = {
    "back": "dos",
    "buffer_overflow": "u2r",
    "ftp_write": "r2l",
    "guess_passwd": "r2l",
    "imap": "r2l",
    "ipsweep": "probe",
    "land": "dos",
    "loadmodule": "u2r",
    "multihop": "r2l",
    "neptune": "dos",
    "nmap": "probe",
    "perl": "u2r",
    "phf": "r2l",
    "pod": "dos",
    "portsweep": "probe",
    "rootkit": "u2r",
    "satan": "probe",
    "smurf": "dos",
    "spy": "r2l",
    "teardrop": "dos",
    "warezclient": "r2l",
    "warezmaster": "r2l",
    "normal": "normal",
}


def _first_fields(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return next(csv.reader(fh), [])


def load_nslkdd(path: Path) -> pd.DataFrame:
    """The records of one NSL-KDD file, typed.

    Columns: the 41 :data:`FEATURES` (symbolic ones as ``str``, the rest numeric), ``class``
    (``str``), ``difficulty`` (``Int64``; ``<NA>`` for 42-column variants without it), then
    ``attack`` (``bool``) and ``family`` (``str``). A header line naming ``duration``, as some
    re-distributions add, is skipped.

    Raises:
        AnomalakeError: the file is missing, has a row whose column count is not 42 or 43,
            or has a non-numeric value in a numeric column.
    """
    if not path.is_file():
        raise AnomalakeError(
            f"no NSL-KDD file at {path}",
            f"pass one of {', '.join(FILES.values())} from the NSL-KDD folder",
        )
    first = _first_fields(path)
    if not first:
        raise AnomalakeError(f"{path.name} is empty", "pass an NSL-KDD .txt file")
    header = 1 if first[0].strip().lower() == "duration" else None
    width = len(first)
    if width not in (len(COLUMNS), len(COLUMNS) - 1):
        raise AnomalakeError(
            f"{path.name} has {width} columns, NSL-KDD has 43 (41 features, class, difficulty)",
            "pass a KDDTrain+/KDDTest+ .txt file (the .arff files are not supported)",
        )
    names = list(COLUMNS[:width])
    try:
        frame = pd.read_csv(
            path,
            header=None,
            skiprows=header,
            names=names,
            dtype={c: str for c in (*SYMBOLIC, "class")},
            skipinitialspace=True,
            on_bad_lines="error",
            engine="c",
        )
    except pd.errors.ParserError as exc:
        raise AnomalakeError(
            f"{path.name}: a row does not have {width} columns ({exc})",
            "the file is truncated or not NSL-KDD",
        ) from exc
    short = frame[names].isna().any(axis=1).to_numpy()
    if short.any():
        row = int(short.nonzero()[0][0])
        raise AnomalakeError(
            f"{path.name}: data row {row + 1} has fewer than {width} columns or an empty field",
            "the file is truncated or not NSL-KDD",
        )
    if width == len(COLUMNS) - 1:
        frame["difficulty"] = pd.NA
    for col in (c for c in FEATURES if c not in SYMBOLIC):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise AnomalakeError(
                f"{path.name}: column {col} has the non-numeric value {frame[col].iloc[row]!r} "
                f"in data row {row + 1}",
                "the columns are out of order or the file is not NSL-KDD",
            )
        frame[col] = values
    frame["difficulty"] = pd.to_numeric(frame["difficulty"], errors="coerce").astype("Int64")
    for col in (*SYMBOLIC, "class"):
        frame[col] = frame[col].str.strip()
    frame["attack"] = frame["class"] != "normal"
    frame["family"] = frame["class"].map(FAMILIES).fillna("unknown")
    return frame


def load_nslkdd_folder(folder: Path) -> dict[str, pd.DataFrame]:
    """The three standard files of an NSL-KDD folder, by the keys of :data:`FILES`."""
    return {key: load_nslkdd(folder / name) for key, name in FILES.items()}
