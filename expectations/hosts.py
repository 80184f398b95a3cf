"""Great Expectations suites of the hosts classifiers' training data, as code.

Two suites, for the pandas frames the loaders return (validate them with
:func:`expectations.runner.validate`, ``context_dir = settings.reports_dir / "quality"``):

* :func:`nslkdd_suite` -- NSL-KDD connection records (:func:`anomalake.loaders.nslkdd.load_nslkdd`);
* :func:`toniot_suite` -- ToN-IoT Linux memory or process samples
  (:func:`anomalake.loaders.toniot.load_toniot`).

Every expectation carries GX's ``severity``. A failed **critical** expectation fails the
training-data quality gate (:func:`expectations.runner.enforce`), so nothing is trained on
the data; a failed **warning** is reported in Data Docs and training goes on.

Severity choices:

* critical: a feature or label column missing; nulls in the label and the key fields (the
  symbolic NSL-KDD columns, the volume counts; ``ts``); negative counts, bytes or sizes
  (a negative byte count means shifted columns or a broken export, and the log scaling
  of the features would silently clip it); rates outside ``[0, 1]``; a ``protocol_type``
  other than ``tcp``/``udp``/``icmp`` (NSL-KDD has no other; another value means the
  columns are out of order); a label outside ``{0, 1}``; a frame without both classes
  (no classifier can be fitted); fewer rows than ``min_rows``; more than ``max_null_share``
  of a metric missing.
* warning: 0/1 flags outside ``{0, 1}``, a few missing metric values (imputed by the
  pipeline), a ToN-IoT ``MEM`` share above 1, a missing process name.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.metadata_types import FailureSeverity

from anomalake.loaders import nslkdd as kdd
from anomalake.loaders import toniot

CRITICAL = FailureSeverity.CRITICAL
WARNING = FailureSeverity.WARNING

NSLKDD_SUITE = "hosts_nslkdd_training"
PROTOCOLS: tuple[str, ...] = ("tcp", "udp", "icmp")
NSLKDD_KEY_COLUMNS: tuple[str, ...] = (
    *kdd.SYMBOLIC,
    "duration",
    "src_bytes",
    "dst_bytes",
    "count",
    "srv_count",
)
NSLKDD_FLAGS: tuple[str, ...] = ("land", "logged_in", "is_host_login", "is_guest_login")
NSLKDD_COUNTS: tuple[str, ...] = tuple(
    f for f in kdd.FEATURES if f not in kdd.SYMBOLIC and f not in kdd.RATES
)

# Metrics that are counts, sizes or shares (never negative). VGROW/RGROW (growth, signed),
# NICE (-20..19) and CMD/POLI/Status/State (text) are not among them.
TONIOT_NON_NEGATIVE: dict[str, tuple[str, ...]] = {
    "memory": ("MINFLT", "MAJFLT", "VSTEXT", "VSIZE", "RSIZE", "MEM"),
    "process": ("TRUN", "TSLPI", "TSLPU", "PRI", "RTPR", "CPUNR", "EXC", "CPU"),
}
TONIOT_ACTIVITIES: tuple[str, ...] = tuple(TONIOT_NON_NEGATIVE)


def toniot_suite_name(activity: str) -> str:
    """The suite (and dataset) name of a ToN-IoT activity, e.g. ``hosts_toniot_memory_training``."""
    return f"hosts_toniot_{activity}_training"


def nslkdd_suite(*, name: str = NSLKDD_SUITE, min_rows: int = 100) -> gx.ExpectationSuite:
    """The suite of NSL-KDD training records as :func:`load_nslkdd` returns them.

    Args:
        name: Suite name (also shown in Data Docs).
        min_rows: Fewer rows than this fail the gate.

    Returns:
        A new, unsaved expectation suite.
    """
    out: list[gxe.Expectation] = [
        gxe.ExpectTableRowCountToBeBetween(min_value=min_rows, severity=CRITICAL),
    ]
    out += [
        gxe.ExpectColumnToExist(column=column, severity=CRITICAL)
        for column in (*kdd.FEATURES, "class", "attack")
    ]
    out += [
        gxe.ExpectColumnValuesToNotBeNull(column=column, severity=CRITICAL)
        for column in (*NSLKDD_KEY_COLUMNS, "class", "attack")
    ]
    out += [
        gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, severity=CRITICAL)
        for column in NSLKDD_COUNTS
    ]
    out += [
        gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=0, max_value=1, severity=CRITICAL
        )
        for column in kdd.RATES
    ]
    out += [
        gxe.ExpectColumnValuesToBeInSet(
            column="protocol_type", value_set=list(PROTOCOLS), severity=CRITICAL
        ),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="attack", value_set=[True, False], severity=CRITICAL
        ),
    ]
    out += [
        gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[0, 1], severity=WARNING)
        for column in NSLKDD_FLAGS
    ]
    return gx.ExpectationSuite(
        name=name,
        expectations=out,
        meta={"dataset": "nslkdd", "use": "training", "owner": "anomalake"},
    )


def toniot_suite(
    activity: str,
    *,
    name: str | None = None,
    min_rows: int = 100,
    max_null_share: float = 0.01,
) -> gx.ExpectationSuite:
    """The suite of ToN-IoT Linux samples of ``activity`` as :func:`load_toniot` returns them.

    Args:
        activity: ``memory`` or ``process``.
        name: Suite name; :func:`toniot_suite_name` by default.
        min_rows: Fewer rows than this fail the gate.
        max_null_share: A numeric metric with more missing values than this share fails the
            gate; any missing value at all is a warning.

    Returns:
        A new, unsaved expectation suite.

    Raises:
        ValueError: ``activity`` has no suite.
    """
    if activity not in TONIOT_NON_NEGATIVE:
        raise ValueError(f"no ToN-IoT suite for {activity!r}; use one of {TONIOT_ACTIVITIES}")
    columns = toniot.metric_columns(activity)
    numeric = toniot.numeric_columns(activity)
    out: list[gxe.Expectation] = [
        gxe.ExpectTableRowCountToBeBetween(min_value=min_rows, severity=CRITICAL),
    ]
    out += [
        gxe.ExpectColumnToExist(column=column, severity=CRITICAL)
        for column in ("ts", "PID", *columns, "label")
    ]
    out += [
        gxe.ExpectColumnValuesToNotBeNull(column=column, severity=CRITICAL)
        for column in ("ts", "label")
    ]
    out += [
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1], severity=CRITICAL),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="label", value_set=[0, 1], severity=CRITICAL
        ),
    ]
    for column in numeric:
        out += [
            gxe.ExpectColumnValuesToNotBeNull(
                column=column, mostly=1.0 - max_null_share, severity=CRITICAL
            ),
            gxe.ExpectColumnValuesToNotBeNull(column=column, severity=WARNING),
        ]
    out += [
        gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, severity=CRITICAL)
        for column in TONIOT_NON_NEGATIVE[activity]
    ]
    if activity == "memory":
        out.append(gxe.ExpectColumnValuesToBeBetween(column="MEM", max_value=1, severity=WARNING))
    out.append(gxe.ExpectColumnValuesToNotBeNull(column="CMD", severity=WARNING))
    return gx.ExpectationSuite(
        name=name or toniot_suite_name(activity),
        expectations=out,
        meta={"dataset": f"toniot-{activity}", "use": "training", "owner": "anomalake"},
    )
