from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalake.generators.hosts import generate_memory, generate_process
from anomalake.loaders.nslkdd import FEATURES
from expectations.hosts import (
    NSLKDD_SUITE,
    nslkdd_suite,
    toniot_suite,
    toniot_suite_name,
)
from expectations.runner import QualityGateFailed, QualityResult, enforce, validate
from tests.ml.test_hosts import synthetic_kdd


def _validate(frame: pd.DataFrame, suite, name: str, tmp_path: Path) -> QualityResult:  # type: ignore[no-untyped-def]
    return validate(frame, suite, name=name, context_dir=tmp_path / "quality", run_label="test")


def test_every_expectation_has_a_severity_and_the_suites_cover_the_schema() -> None:
    kdd = nslkdd_suite()
    memory = toniot_suite("memory")
    for suite in (kdd, memory, toniot_suite("process")):
        assert {e.severity.value for e in suite.expectations} == {"critical", "warning"}
    exist = {e.column for e in kdd.expectations if e.expectation_type == "expect_column_to_exist"}
    assert exist == {*FEATURES, "class", "attack"} and len(FEATURES) == 41
    assert memory.name == toniot_suite_name("memory") == "hosts_toniot_memory_training"
    with pytest.raises(ValueError, match="no ToN-IoT suite"):
        toniot_suite("disk")


def test_clean_nslkdd_rows_pass(tmp_path: Path) -> None:
    result = _validate(synthetic_kdd(300, seed=1), nslkdd_suite(), NSLKDD_SUITE, tmp_path)
    assert result.success_critical, result.failures
    assert enforce(result) is result
    assert result.data_docs_index.is_file()


def test_planted_bad_nslkdd_rows_fail_the_gate_critically(tmp_path: Path) -> None:
    frame = synthetic_kdd(300, seed=1)
    frame.loc[3, "src_bytes"] = -10.0  # negative bytes
    frame.loc[4, "serror_rate"] = 1.5  # a rate above 1
    frame.loc[5, "protocol_type"] = "SF"  # shifted columns
    frame.loc[6, "service"] = None  # a null key field
    frame.loc[7, "logged_in"] = 2.0  # a flag outside {0, 1}: warning only
    frame = frame.drop(columns=["dst_host_srv_rerror_rate"])  # a missing feature
    result = _validate(frame, nslkdd_suite(), NSLKDD_SUITE, tmp_path)
    assert not result.success_critical
    assert set(result.failed_critical) == {
        "expect_column_values_to_be_between(src_bytes)",
        "expect_column_values_to_be_between(serror_rate)",
        "expect_column_values_to_be_in_set(protocol_type)",
        "expect_column_values_to_not_be_null(service)",
        "expect_column_to_exist(dst_host_srv_rerror_rate)",
        "expect_column_values_to_be_between(dst_host_srv_rerror_rate)",
    }
    assert result.failed_warning == ("expect_column_values_to_be_in_set(logged_in)",)
    with pytest.raises(QualityGateFailed, match="src_bytes"):
        enforce(result)


def test_nslkdd_rows_of_one_class_or_too_few_fail(tmp_path: Path) -> None:
    frame = synthetic_kdd(300, seed=1)
    normal = frame[~frame["attack"]]
    result = _validate(normal, nslkdd_suite(min_rows=len(normal) + 1), NSLKDD_SUITE, tmp_path)
    assert set(result.failed_critical) == {
        "expect_table_row_count_to_be_between()",
        "expect_column_distinct_values_to_contain_set(attack)",
    }


@pytest.mark.parametrize("activity", ["memory", "process"])
def test_generated_toniot_rows_pass(activity: str, tmp_path: Path) -> None:
    frame = {"memory": generate_memory, "process": generate_process}[activity](400, seed=2)
    name = toniot_suite_name(activity)
    result = _validate(frame, toniot_suite(activity), name, tmp_path)
    assert result.success, result.failures


def test_planted_bad_toniot_rows_fail_the_gate_critically(tmp_path: Path) -> None:
    frame = generate_memory(400, seed=2)
    frame["label"] = frame["label"].astype(int)
    frame.loc[10, "label"] = 2  # a label outside {0, 1}
    frame.loc[11, "RSIZE"] = -1.0  # a negative size
    frame.loc[12:20, "MINFLT"] = np.nan  # 9 of 400 missing: over the 1 % allowed
    frame.loc[21, "VGROW"] = -5.0  # growth may be negative: no failure
    frame.loc[22, "MEM"] = 1.5  # a share above 1: warning
    name = toniot_suite_name("memory")
    result = _validate(frame, toniot_suite("memory"), name, tmp_path)
    assert set(result.failed_critical) == {
        "expect_column_values_to_be_in_set(label)",
        "expect_column_values_to_be_between(RSIZE)",
        "expect_column_values_to_not_be_null(MINFLT)",
    }
    assert set(result.failed_warning) == {
        "expect_column_values_to_not_be_null(MINFLT)",
        "expect_column_values_to_be_between(MEM)",
    }
    # A few missing values are a warning only.
    few = generate_memory(400, seed=2)
    few.loc[5, "MINFLT"] = np.nan
    result = _validate(few, toniot_suite("memory"), name, tmp_path)
    assert result.success_critical
    assert result.failed_warning == ("expect_column_values_to_not_be_null(MINFLT)",)
