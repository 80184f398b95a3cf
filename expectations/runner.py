"""Run an expectation suite on a DataFrame through a file-backed GX context; gate on severity.

:func:`validate` registers (or reuses) everything GX 1.x needs -- a Spark or pandas
datasource, a dataframe asset and its whole-dataframe batch definition, the suite, a
``ValidationDefinition`` and a ``Checkpoint`` with an ``UpdateDataDocsAction`` -- runs the
checkpoint on the frame and returns a :class:`QualityResult`. :func:`enforce` raises
:class:`QualityGateFailed` when a critical expectation failed.

The context lives in ``context_dir/gx`` (suites, validation definitions, checkpoints and
every validation result, as JSON), its Data Docs site in ``context_dir/data_docs``: static
HTML whose ``index.html`` lists every run of every suite, for ops to open in a browser.
Everything is add-or-update by name, so re-running a date, in this process or another,
reuses what an earlier run registered. Runs on one ``context_dir`` are serialised by a file
lock, since GX rewrites ``great_expectations.yml`` and the Data Docs index without one.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import great_expectations as gx
import pandas as pd
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.datasource.fluent import PandasDatasource, SparkDatasource
from great_expectations.expectations.metadata_types import FailureSeverity
from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

ResultFormatName = Literal["BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE"]

SITE_NAME = "local_site"
DOCS_DIR = "data_docs"
SPARK_DATASOURCE = "anomalake_spark"
PANDAS_DATASOURCE = "anomalake_pandas"
# Relative to the context root (``context_dir/gx``), so the project can be moved.
_SITE_CONFIG: dict[str, Any] = {
    "class_name": "SiteBuilder",
    "show_how_to_buttons": False,
    "store_backend": {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": f"../{DOCS_DIR}/",
    },
    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
}


@dataclass(frozen=True)
class Failure:
    """One failed expectation.

    Attributes:
        expectation: ``type(columns)``, e.g. ``expect_column_values_to_not_be_null(close)``.
        severity: ``critical``, ``warning`` or ``info``.
        detail: What was observed (unexpected count and examples, observed value, or error).
    """

    expectation: str
    severity: str
    detail: str


@dataclass(frozen=True)
class QualityResult:
    """The outcome of one validation run.

    Attributes:
        name: The validated dataset (asset, validation definition and checkpoint name).
        suite_name: The expectation suite.
        run_label: The run name shown in Data Docs (e.g. the logical date).
        success: Every expectation passed.
        success_critical: No critical expectation failed (the quality gate).
        failed_critical: Labels of the failed critical expectations.
        failed_warning: Labels of the failed warning expectations.
        failures: Every failed expectation with its severity and what was observed.
        statistics: GX's statistics (evaluated/successful/unsuccessful expectations,
            success percent).
        data_docs_index: The Data Docs ``index.html``.
        validation_page: This run's Data Docs page, if GX reports one.
    """

    name: str
    suite_name: str
    run_label: str
    success: bool
    success_critical: bool
    failed_critical: tuple[str, ...]
    failed_warning: tuple[str, ...]
    failures: tuple[Failure, ...] = field(repr=False)
    statistics: Mapping[str, float | int | None]
    data_docs_index: Path
    validation_page: Path | None


class QualityGateFailed(Exception):
    """A critical expectation failed; ``result`` holds the whole outcome."""

    def __init__(self, result: QualityResult) -> None:
        self.result = result
        critical = [f for f in result.failures if f.severity == FailureSeverity.CRITICAL.value]
        lines = "\n".join(f"  - {f.expectation}: {f.detail}" for f in critical)
        docs = result.validation_page or result.data_docs_index
        super().__init__(
            f"{result.name} ({result.suite_name}, run {result.run_label}): "
            f"{len(critical)} critical expectation(s) failed:\n{lines}\nData Docs: {docs}"
        )


def enforce(result: QualityResult) -> QualityResult:
    """The quality gate: pass ``result`` through, or raise if a critical expectation failed.

    Warnings are logged, never raised.

    Raises:
        QualityGateFailed: ``result.success_critical`` is false.
    """
    if result.failed_warning:
        log.warning(
            "%s: warning expectation(s) failed: %s (Data Docs: %s)",
            result.name,
            ", ".join(result.failed_warning),
            result.validation_page or result.data_docs_index,
        )
    if not result.success_critical:
        raise QualityGateFailed(result)
    return result


def open_context(context_dir: Path) -> AbstractDataContext:
    """The file-backed GX context in ``context_dir/gx``, Data Docs in ``context_dir/data_docs``.

    Created on first use; the Data Docs site, progress bars (off) and analytics (off) are
    (re)configured only when they differ, so an existing project is not rewritten.
    """
    context_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=context_dir)
    sites = context.list_data_docs_sites()
    for other in [s for s in sites if s != SITE_NAME]:
        context.delete_data_docs_site(other)
    if SITE_NAME not in sites:
        context.add_data_docs_site(SITE_NAME, _SITE_CONFIG)  # type: ignore[arg-type]
    elif dict(sites[SITE_NAME]) != _SITE_CONFIG:
        context.update_data_docs_site(SITE_NAME, _SITE_CONFIG)  # type: ignore[arg-type]
    bars = context.variables.progress_bars
    if bars is None or bars.get("globally", True) or bars.get("metric_calculations", True):
        context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        context.variables.save()
    if context.config.analytics_enabled is not False:
        context.enable_analytics(False)
    return context


def data_docs_index(context_dir: Path) -> Path:
    """Where :func:`validate` writes the Data Docs ``index.html`` for ``context_dir``."""
    return Path(context_dir).resolve() / DOCS_DIR / "index.html"


def validate(
    data: DataFrame | pd.DataFrame,
    suite: gx.ExpectationSuite,
    *,
    name: str,
    context_dir: Path,
    run_label: str,
    result_format: ResultFormatName = "BASIC",
) -> QualityResult:
    """Validate a Spark or pandas DataFrame against ``suite`` and update Data Docs.

    Args:
        data: The frame to validate (Spark: the bar suites; pandas: the batch profile).
        suite: The suite (e.g. :func:`expectations.markets.silver_suite`); saved by name.
        name: The dataset's name, e.g. ``silver_markets``: names the asset, batch
            definition, validation definition and checkpoint.
        context_dir: Directory of the GX project and its Data Docs.
        run_label: Run name in Data Docs and the validation store, e.g. ``2024-01-02``.
        result_format: GX result format. ``BASIC`` (default) keeps up to 20 unexpected values
            per expectation; ``SUMMARY`` adds value counts and takes about twice as long on
            Spark; ``BOOLEAN_ONLY`` is cheapest but shows no examples in Data Docs.

    Returns:
        The outcome, with the paths of the Data Docs index and of this run's page.
    """
    context_dir = Path(context_dir).resolve()
    spark_frame = data if isinstance(data, DataFrame) else None
    with _locked(context_dir), warnings.catch_warnings():
        # GX warns on every Spark datasource that `force_reuse_spark_context` is deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        context = open_context(context_dir)
        batch_definition = _batch_definition(context, name, spark=spark_frame is not None)
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(
                name=name, data=batch_definition, suite=context.suites.add_or_update(suite)
            )
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[SITE_NAME])],
                result_format=result_format,
            )
        )
        was_cached = spark_frame is not None and spark_frame.is_cached
        run_id = gx.RunIdentifier(run_name=run_label, run_time=dt.datetime.now(dt.UTC))
        try:
            outcome = checkpoint.run(batch_parameters={"dataframe": data}, run_id=run_id)
        finally:
            if spark_frame is not None and not was_cached:
                spark_frame.unpersist()  # GX persists the batch and never releases it
        identifier, suite_result = next(iter(outcome.run_results.items()))
        urls = context.get_docs_sites_urls(resource_identifier=identifier, site_name=SITE_NAME)
    return _result(
        suite_result,
        name=name,
        run_label=run_label,
        index=data_docs_index(context_dir),
        page=_path(urls[0]["site_url"]) if urls else None,
    )


def _batch_definition(
    context: AbstractDataContext, name: str, *, spark: bool
) -> BatchDefinition[Any]:
    """The whole-dataframe batch definition ``name`` of asset ``name``, added if missing."""
    source_name = SPARK_DATASOURCE if spark else PANDAS_DATASOURCE
    try:
        datasource = context.data_sources.get(source_name)
    except KeyError:
        sources = context.data_sources
        datasource = (sources.add_spark if spark else sources.add_pandas)(name=source_name)
    if not isinstance(datasource, SparkDatasource | PandasDatasource):
        raise TypeError(f"datasource {source_name!r} is a {type(datasource).__name__}")
    try:
        asset = datasource.get_asset(name)
    except LookupError:
        asset = datasource.add_dataframe_asset(name=name)
    try:
        return asset.get_batch_definition(name)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(name)


@contextmanager
def _locked(context_dir: Path) -> Iterator[None]:
    context_dir.mkdir(parents=True, exist_ok=True)
    with open(context_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _path(url: str | None) -> Path | None:
    if not url:
        return None
    parsed = urlparse(url)
    return Path(unquote(parsed.path)).resolve() if parsed.scheme in ("", "file") else None


def _label(result: ExpectationValidationResult) -> str:
    config = result.expectation_config
    if config is None:
        return "unknown expectation"
    kwargs = config.kwargs
    columns = kwargs.get("column_list") or [
        kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k) is not None
    ]
    return f"{config.type}({', '.join(map(str, columns))})"


def _detail(result: ExpectationValidationResult) -> str:
    error = _exception_message(result.exception_info or {})
    if error is not None:
        return f"raised: {error}"
    body = result.result or {}
    if body.get("unexpected_count") is not None:
        examples = [_plain(v) for v in (body.get("partial_unexpected_list") or [])[:5]]
        text = f"{body['unexpected_count']} unexpected of {body.get('element_count')} rows"
        return f"{text}, e.g. {examples}" if examples else text
    if "observed_value" in body:
        return f"observed {_plain(body['observed_value'])!r}"
    config = result.expectation_config
    if config is not None and config.type == "expect_column_to_exist":
        return "column is missing"
    return "failed"


def _exception_message(info: Mapping[str, Any]) -> str | None:
    """The last line of the error an expectation raised, if any.

    GX reports an expectation's own error at the top level of ``exception_info`` and a
    metric's error nested under the metric's id.
    """
    candidates = [info, *(v for v in info.values() if isinstance(v, Mapping))]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            lines = str(candidate.get("exception_message") or "").strip().splitlines()
            return lines[-1] if lines else "error"
    return None


def _plain(value: Any) -> Any:
    """NumPy scalars as Python values, so messages read ``3.0`` rather than ``np.float64(3.0)``."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, list | tuple | dict) else value


def _result(
    suite_result: ExpectationSuiteValidationResult,
    *,
    name: str,
    run_label: str,
    index: Path,
    page: Path | None,
) -> QualityResult:
    failures: list[Failure] = []
    for r in suite_result.results:
        if r.success:
            continue
        config = r.expectation_config
        severity = config.severity if config is not None else FailureSeverity.CRITICAL
        failures.append(Failure(_label(r), FailureSeverity(severity).value, _detail(r)))
    critical = tuple(f.expectation for f in failures if f.severity == "critical")
    return QualityResult(
        name=name,
        suite_name=suite_result.suite_name,
        run_label=run_label,
        success=bool(suite_result.success),
        success_critical=not critical,
        failed_critical=critical,
        failed_warning=tuple(f.expectation for f in failures if f.severity == "warning"),
        failures=tuple(failures),
        statistics=dict(suite_result.statistics),
        data_docs_index=index,
        validation_page=page,
    )
