"""Features of network connections (NSL-KDD) and host processes (ToN-IoT Linux).

The feature functions are pure: a frame of raw records in (loader rows, or the same fields
from a stream or a replay; extra columns are ignored), a frame of model inputs out, the same
output for the same row whatever else is in the batch. Nothing here is fitted: stateless
transforms (log scaling, type casts) happen here, and everything learnt from data (the
one-hot vocabulary, scaling) lives in the model's pipeline (:func:`encoder`), so training
and serving cannot drift apart. The models in :mod:`ml.hosts` put these functions in their
pipelines as the first step, so a logged model takes raw rows.

Columns that are not features, and why:

NSL-KDD
    ``class``, ``attack``, ``family``: the label and what is derived from it.
    ``difficulty``: how many of 21 reference learners got the record right; computed from the
    label, so it leaks it.
    ``num_outbound_cmds``: 0 in every record of every NSL-KDD file; it carries nothing.

ToN-IoT Linux
    ``label``, ``type``: the label and the attack type.
    ``ts``: the capture ran attacks in scheduled windows, so the time identifies the label
    inside one capture and means nothing for tomorrow's data.
    ``PID``: an identifier; attack processes are started during the attacks and get fresh,
    higher PIDs, so it is a proxy for time (and PIDs differ between machines and boots).
    ``CPUNR``: which core ran the process, an arbitrary scheduler choice.
    ``CMD`` (the process name) is kept as a capped category: attack tools have telling names,
    but a model must not rely on them alone, so rare names share one bucket and unseen names
    fall into it too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from anomalake.errors import AnomalakeError
from anomalake.loaders import nslkdd as kdd
from anomalake.loaders import toniot

NSLKDD_CATEGORICAL: tuple[str, ...] = kdd.SYMBOLIC
NSLKDD_DROPPED: tuple[str, ...] = ("num_outbound_cmds",)
NSLKDD_NUMERIC: tuple[str, ...] = tuple(
    f for f in kdd.FEATURES if f not in NSLKDD_CATEGORICAL and f not in NSLKDD_DROPPED
)
# Heavy-tailed counts and byte totals: log1p makes a flood of 500 vs 511 connections look
# alike and a 10 kB vs 10 MB transfer differ, which is what generalises to unseen attacks.
NSLKDD_LOG_SCALED: tuple[str, ...] = (
    "duration",
    "src_bytes",
    "dst_bytes",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "num_compromised",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "count",
    "srv_count",
    "dst_host_count",
    "dst_host_srv_count",
)
NSLKDD_INPUTS: tuple[str, ...] = tuple(f for f in kdd.FEATURES if f not in NSLKDD_DROPPED)

TONIOT_DROPPED: tuple[str, ...] = ("ts", "PID", "CPUNR", "label", "type")
# Counters and sizes, signed-log scaled (VGROW/RGROW can be negative).
TONIOT_LOG_SCALED: frozenset[str] = frozenset(
    {
        "MINFLT",
        "MAJFLT",
        "VSTEXT",
        "VSIZE",
        "RSIZE",
        "VGROW",
        "RGROW",
        "TRUN",
        "TSLPI",
        "TSLPU",
        "RDDSK",
        "WRDSK",
        "WCANCL",
    }
)
MISSING_CATEGORY = "<missing>"


def _require(df: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnomalakeError(
            f"{what} features need columns {missing}, which the frame lacks",
            f"pass rows with all of: {', '.join(columns)}",
        )


def _categories(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().fillna(MISSING_CATEGORY).astype(object)


def _signed_log1p(values: pd.Series) -> pd.Series:
    x = pd.to_numeric(values, errors="coerce").astype(float)
    return np.sign(x) * np.log1p(x.abs())


def nslkdd_features(df: pd.DataFrame) -> pd.DataFrame:
    """Model inputs of NSL-KDD connection records.

    Returns the three categorical columns (text; encoded by the pipeline) followed by the 37
    numeric ones as floats, counts and byte totals log1p-scaled (:data:`NSLKDD_LOG_SCALED`;
    negative values, which the data set never has, are clipped to 0). Missing values stay
    NaN (the pipeline imputes them).

    Raises:
        AnomalakeError: a needed column is absent.
    """
    _require(df, NSLKDD_INPUTS, "NSL-KDD")
    out = pd.DataFrame(index=df.index)
    for col in NSLKDD_CATEGORICAL:
        out[col] = _categories(df[col])
    for col in NSLKDD_NUMERIC:
        x = pd.to_numeric(df[col], errors="coerce").astype(float)
        out[col] = np.log1p(x.clip(lower=0.0)) if col in NSLKDD_LOG_SCALED else x
    return out


def toniot_inputs(activity: str) -> tuple[str, ...]:
    """The raw columns :func:`toniot_features` reads for ``activity``."""
    return tuple(c for c in toniot.metric_columns(activity) if c not in TONIOT_DROPPED)


def toniot_categorical(activity: str) -> tuple[str, ...]:
    """The text columns among the activity's features."""
    return tuple(c for c in toniot.text_columns(activity) if c not in TONIOT_DROPPED)


def toniot_numeric(activity: str) -> tuple[str, ...]:
    """The numeric columns among the activity's features."""
    return tuple(c for c in toniot.numeric_columns(activity) if c not in TONIOT_DROPPED)


def toniot_features(df: pd.DataFrame, activity: str) -> pd.DataFrame:
    """Model inputs of ToN-IoT Linux process samples of one activity (memory/process/disk).

    Returns the text columns (``CMD`` and, for process, ``POLI``, ``Status``, ``State``)
    followed by the numeric ones as floats, counters and sizes signed-log1p scaled. ``ts``,
    ``PID``, ``CPUNR`` and the labels are dropped (see the module docstring).

    Raises:
        AnomalakeError: unknown activity, or a needed column is absent.
    """
    inputs = toniot_inputs(activity)
    _require(df, inputs, f"ToN-IoT {activity}")
    out = pd.DataFrame(index=df.index)
    for col in toniot_categorical(activity):
        out[col] = _categories(df[col])
    for col in toniot_numeric(activity):
        if col in TONIOT_LOG_SCALED:
            out[col] = _signed_log1p(df[col])
        else:
            out[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return out


def encoder(
    categorical: tuple[str, ...],
    numeric: tuple[str, ...],
    *,
    min_frequency: int = 10,
    max_categories: int | None = None,
) -> ColumnTransformer:
    """The fitted half of feature preparation, for the model pipeline.

    Categories are one-hot encoded; those seen fewer than ``min_frequency`` times in training,
    and any seen only at serving time, share one "infrequent" column, so a new service or
    process name neither fails nor gets a weight of its own. Numeric columns are
    median-imputed and standardised (trees ignore the scaling; distance-based parts need it).
    """
    numeric_steps = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    )
    return ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=min_frequency,
                    max_categories=max_categories,
                    sparse_output=False,
                ),
                list(categorical),
            ),
            ("numeric", numeric_steps, list(numeric)),
        ],
        verbose_feature_names_out=False,
    )
