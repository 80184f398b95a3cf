"""Resolve the JVM artifacts with Maven into a git-ignored cache and check them.

Two small poms under ``infra/maven`` name what we need from Maven Central:

* ``kafka``: the Apache Kafka broker (run in KRaft mode) and its runtime dependencies;
* ``spark``: ``spark-sql-kafka-0-10`` and ``delta-spark`` with theirs.

``mvn dependency:copy-dependencies`` copies each set into ``<jars_dir>/<name>``; Maven's
own repository (``~/.m2``) keeps the downloads, so a second install is offline-fast. A
stamp file records the pom's hash and the jar list, so a changed pom re-resolves and a
truncated or missing jar (a corrupt cache) is detected and reported.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from anomalake.errors import AnomalakeError
from anomalake.settings import PROJECT_ROOT, Settings

POM_DIR = PROJECT_ROOT / "infra" / "maven"
JAR_SETS = ("kafka", "spark")
STAMP = ".resolved.json"
_VERSION_SUFFIX = re.compile(r"-\d+(?:\.\d+)+[\w.\-]*\.jar$")


@dataclass(frozen=True)
class JarSet:
    """One resolved set of jars."""

    name: str
    directory: Path
    jars: tuple[Path, ...]


def check_java() -> str:
    """Return ``java -version``'s first line; fail clearly without Java 17+."""
    java = shutil.which("java")
    if not java:
        raise AnomalakeError(
            "Java not found on PATH", "install a JDK 17+ (apt-get install openjdk-17-jdk-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        raise AnomalakeError(
            f"Java 17+ required, found: {out.splitlines()[0] if out else '?'}",
            "install a JDK 17+ and put it first on PATH",
        )
    return out.splitlines()[0]


def check_maven() -> str:
    """Return the path of ``mvn``; fail clearly without Maven."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise AnomalakeError(
            "Maven (mvn) not found on PATH", "install Maven 3 (apt-get install maven)"
        )
    return mvn


def artifact_name(jar: str) -> str:
    """``kafka-clients-3.9.2.jar`` -> ``kafka-clients``: the jar's name without version."""
    return _VERSION_SUFFIX.sub("", jar)


def spark_bundled_jars() -> set[str]:
    """Artifact names of the jars pyspark ships (they win on the classpath anyway)."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    return {artifact_name(p.name) for p in jars.glob("*.jar")}


def _pom_hash(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _is_valid_jar(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None if path.stat().st_size < 256_000 else bool(zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def verify(name: str, settings: Settings) -> JarSet:
    """Check the cached jar set ``name``; raise if missing, stale or corrupt."""
    directory = settings.jars_dir / name
    stamp = directory / STAMP
    pom = POM_DIR / name / "pom.xml"
    if not stamp.exists():
        raise AnomalakeError(
            f"{name} jars are not installed in {directory}", "run `anomalake install`"
        )
    meta = json.loads(stamp.read_text())
    if meta.get("pom_sha256") != _pom_hash(pom):
        raise AnomalakeError(
            f"{name} jars were resolved from an older {pom}", "run `anomalake install`"
        )
    jars = tuple(directory / j for j in meta["jars"])
    bad = [j.name for j in jars if not j.exists() or not _is_valid_jar(j)]
    if bad:
        raise AnomalakeError(
            f"corrupt jar cache in {directory}: {', '.join(bad[:3])}",
            "run `anomalake install --force`",
        )
    return JarSet(name, directory, jars)


def resolve(name: str, settings: Settings, *, force: bool = False) -> JarSet:
    """Resolve jar set ``name`` with Maven unless a valid cache is present."""
    if not force:
        try:
            return verify(name, settings)
        except AnomalakeError:
            pass
    mvn = check_maven()
    directory = settings.jars_dir / name
    staging = settings.jars_dir / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM_DIR / name / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stdout.splitlines() if "ERROR" in ln][:2]
        raise AnomalakeError(
            f"Maven could not resolve the {name} jars: {' '.join(errors)[:300]}",
            "check access to Maven Central, then run `anomalake install --force`",
        )
    skip = spark_bundled_jars() if name == "spark" else set()
    jars = sorted(p.name for p in staging.glob("*.jar") if artifact_name(p.name) not in skip)
    for p in staging.glob("*.jar"):
        if p.name not in jars:
            p.unlink()
    (staging / STAMP).write_text(
        json.dumps({"pom_sha256": _pom_hash(POM_DIR / name / "pom.xml"), "jars": jars}, indent=1)
    )
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return verify(name, settings)


def install(settings: Settings, *, force: bool = False) -> list[JarSet]:
    """Check Java and resolve every jar set."""
    check_java()
    return [resolve(name, settings, force=force) for name in JAR_SETS]
