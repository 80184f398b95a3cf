from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from anomalake.errors import AnomalakeError
from anomalake.install import JAR_SETS, POM_DIR, STAMP, artifact_name, inputs_hash, verify
from anomalake.settings import Settings


@pytest.mark.parametrize(
    ("jar", "name"),
    [
        ("kafka-clients-3.9.2.jar", "kafka-clients"),
        ("delta-spark_4.2_2.13-4.4.0.jar", "delta-spark_4.2_2.13"),
        ("spark-sql-kafka-0-10_2.13-4.2.0.jar", "spark-sql-kafka-0-10_2.13"),
        ("zstd-jni-1.5.7-3.jar", "zstd-jni"),
    ],
)
def test_artifact_name_strips_the_version(jar: str, name: str) -> None:
    assert artifact_name(jar) == name


def _fake_cache(tmp_path: Path) -> tuple[Settings, Path]:
    settings = Settings(profile="local", home=tmp_path, jars_dir=tmp_path / "jars")
    directory = settings.jars_dir / "spark"
    directory.mkdir(parents=True)
    with zipfile.ZipFile(directory / "a-1.0.jar", "w") as zf:
        zf.writestr("A.class", b"\xca\xfe\xba\xbe")
    (directory / STAMP).write_text(
        json.dumps({"inputs_sha256": inputs_hash("spark"), "jars": ["a-1.0.jar"]})
    )
    return settings, directory


def test_verify_accepts_a_complete_cache(tmp_path: Path) -> None:
    settings, directory = _fake_cache(tmp_path)
    assert verify("spark", settings).jars == (directory / "a-1.0.jar",)


def test_verify_reports_a_missing_cache(tmp_path: Path) -> None:
    settings = Settings(profile="local", home=tmp_path, jars_dir=tmp_path / "nothing")
    with pytest.raises(AnomalakeError, match="not installed.*anomalake install"):
        verify("kafka", settings)


def test_verify_reports_a_truncated_jar(tmp_path: Path) -> None:
    settings, directory = _fake_cache(tmp_path)
    (directory / "a-1.0.jar").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(AnomalakeError, match=r"corrupt jar cache.*install --force"):
        verify("spark", settings)


def test_verify_reports_a_changed_pom(tmp_path: Path) -> None:
    settings, directory = _fake_cache(tmp_path)
    stamp = json.loads((directory / STAMP).read_text())
    (directory / STAMP).write_text(json.dumps({**stamp, "inputs_sha256": "old"}))
    with pytest.raises(AnomalakeError, match="older"):
        verify("spark", settings)


def test_each_jar_set_has_its_own_inputs_hash() -> None:
    hashes = {name: inputs_hash(name) for name in JAR_SETS}
    assert len(set(hashes.values())) == len(JAR_SETS)


def test_missing_java_and_maven_name_the_fix(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from anomalake.install import check_java, check_javac, check_maven

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AnomalakeError, match="Java not found.*fix: install a JDK"):
        check_java()
    with pytest.raises(AnomalakeError, match="Maven .* not found.*fix: install Maven"):
        check_maven()
    with pytest.raises(AnomalakeError, match="javac not found.*fix: install a JDK"):
        check_javac()


@pytest.mark.parametrize(
    ("master", "needed"),
    [
        ("local", True),
        ("local[2]", True),
        ("local[*, 3]", True),
        ("local-cluster[2,1,1024]", False),
    ],
)
def test_the_local_fs_jar_is_built_only_where_spark_runs_in_one_jvm(
    tmp_path: Path, master: str, needed: bool
) -> None:
    from anomalake.install import needs_local_fs

    local = Settings(profile="local", home=tmp_path, spark={"master": master})
    assert needs_local_fs(local) is needed


def test_a_stamp_from_before_the_local_fs_set_is_still_valid(tmp_path: Path) -> None:
    settings, directory = _fake_cache(tmp_path)
    # what the stamps said before: the sha256 of the pom's bytes
    old_hash = hashlib.sha256((POM_DIR / "spark" / "pom.xml").read_bytes()).hexdigest()
    (directory / STAMP).write_text(json.dumps({"pom_sha256": old_hash, "jars": ["a-1.0.jar"]}))
    assert verify("spark", settings).jars == (directory / "a-1.0.jar",)
