"""Resolve the JVM artifacts with Maven into a git-ignored cache and check them.

Two small poms under ``infra/maven`` name what we need from Maven Central:

* ``kafka``: the Apache Kafka broker (run in KRaft mode) and its runtime dependencies;
* ``spark``: ``spark-sql-kafka-0-10`` and ``delta-spark`` with theirs.

``mvn dependency:copy-dependencies`` copies each set into ``<jars_dir>/<name>``; Maven's
own repository (``~/.m2``) keeps the downloads, so a second install is offline-fast.

One more set is our own code: ``local-fs``, the few classes under ``infra/java`` that give
local Spark a Hadoop file system without forked ``chmod``/``readlink`` (see
``infra/java/io/anomalake/fs/RawLocalFileSystem.java``), compiled with ``javac`` against the
Hadoop jars pyspark ships, so it matches the Hadoop it runs in.

A stamp file in each set records the hash of its inputs (pom, or sources and pyspark
version) and the jar list, so a changed input rebuilds and a truncated or missing jar (a
corrupt cache) is detected and reported.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
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
JAVA_DIR = PROJECT_ROOT / "infra" / "java"
MAVEN_SETS = ("kafka", "spark")
LOCAL_FS = "local-fs"
JAR_SETS = (*MAVEN_SETS, LOCAL_FS)
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


def pyspark_jars() -> Path:
    """The folder of the jars the installed pyspark ships (found without importing it)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise AnomalakeError("pyspark is not installed", "run `make install`")
    return Path(spec.origin).parent / "jars"


def spark_bundled_jars() -> set[str]:
    """Artifact names of the jars pyspark ships (they win on the classpath anyway)."""
    jars = pyspark_jars()
    return {artifact_name(p.name) for p in jars.glob("*.jar")}


def inputs_hash(name: str) -> str:
    """The hash of what jar set ``name`` is made from: its pom, or sources and pyspark."""
    digest = hashlib.sha256()
    if name in MAVEN_SETS:
        digest.update((POM_DIR / name / "pom.xml").read_bytes())
    else:
        digest.update(importlib.metadata.version("pyspark").encode())
        for source in java_sources():
            digest.update(source.relative_to(JAVA_DIR).as_posix().encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()


def java_sources() -> list[Path]:
    """The Java sources of the ``local-fs`` set."""
    sources = sorted(JAVA_DIR.rglob("*.java"))
    if not sources:
        raise AnomalakeError(f"no Java sources in {JAVA_DIR}", "run from a checkout of the project")
    return sources


def needs_local_fs(settings: Settings) -> bool:
    """Whether Spark runs on the ``local-fs`` jar: the local profile, all in one JVM.

    A ``local``/``local[N]`` master runs the executors inside the driver, where the jar is
    on the class path; any other master (and the ``cluster`` profile's HDFS or S3) uses
    Hadoop's own file systems.
    """
    return settings.profile == "local" and settings.local_cores is not None


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
    if not stamp.exists():
        raise AnomalakeError(
            f"{name} jars are not installed in {directory}", "run `anomalake install`"
        )
    meta = json.loads(stamp.read_text())
    # (stamps written before the local-fs set named the same pom hash "pom_sha256")
    if meta.get("inputs_sha256", meta.get("pom_sha256")) != inputs_hash(name):
        made_from = (
            POM_DIR / name / "pom.xml"
            if name in MAVEN_SETS
            else f"{JAVA_DIR} or another pyspark version"
        )
        raise AnomalakeError(
            f"{name} jars were made from an older {made_from}", "run `anomalake install`"
        )
    jars = tuple(directory / j for j in meta["jars"])
    bad = [j.name for j in jars if not j.exists() or not _is_valid_jar(j)]
    if bad:
        raise AnomalakeError(
            f"corrupt jar cache in {directory}: {', '.join(bad[:3])}",
            "run `anomalake install --force`",
        )
    return JarSet(name, directory, jars)


def _valid_cache(name: str, settings: Settings) -> JarSet | None:
    """The cached jar set ``name`` if it is valid and up to date."""
    try:
        return verify(name, settings)
    except AnomalakeError:
        return None


def resolve(name: str, settings: Settings, *, force: bool = False) -> JarSet:
    """Resolve jar set ``name`` with Maven unless a valid cache is present."""
    if not force and (cached := _valid_cache(name, settings)):
        return cached
    mvn = check_maven()
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
    return _publish(name, settings, staging, jars)


def _publish(name: str, settings: Settings, staging: Path, jars: list[str]) -> JarSet:
    """Stamp the set built in ``staging`` and put it in place of the cached one."""
    (staging / STAMP).write_text(
        json.dumps({"inputs_sha256": inputs_hash(name), "jars": jars}, indent=1)
    )
    directory = settings.jars_dir / name
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return verify(name, settings)


def check_javac() -> str:
    """Return the path of ``javac``; fail clearly with a JRE only."""
    javac = shutil.which("javac")
    if not javac:
        raise AnomalakeError(
            "javac not found on PATH (a JRE without the JDK?)",
            "install a JDK 17+ (apt-get install openjdk-17-jdk-headless)",
        )
    return javac


def build_local_fs(settings: Settings, *, force: bool = False) -> JarSet:
    """Compile ``infra/java`` into the ``local-fs`` jar unless a valid one is cached."""
    if not force and (cached := _valid_cache(LOCAL_FS, settings)):
        return cached
    javac = check_javac()
    staging = settings.jars_dir / f".{LOCAL_FS}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    classes = staging / "classes"
    hadoop = pyspark_jars() / "*"
    cmd = [javac, "--release", "17", "-cp", str(hadoop), "-d", str(classes)]
    proc = subprocess.run([*cmd, *map(str, java_sources())], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AnomalakeError(
            f"javac could not compile {JAVA_DIR}: {proc.stderr.strip()[:600]}",
            "check the sources against the Hadoop jars in pyspark/jars",
        )
    jar = f"anomalake-{LOCAL_FS}.jar"
    with zipfile.ZipFile(staging / jar, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        for path in sorted(classes.rglob("*.class")):
            zf.write(path, path.relative_to(classes).as_posix())
    shutil.rmtree(classes)
    return _publish(LOCAL_FS, settings, staging, [jar])


def install(settings: Settings, *, force: bool = False) -> list[JarSet]:
    """Check Java, resolve the Maven jar sets and build our own where Spark uses it."""
    check_java()
    local_fs = needs_local_fs(settings)
    if local_fs:
        check_javac()
    sets = [resolve(name, settings, force=force) for name in MAVEN_SETS]
    return [*sets, build_local_fs(settings, force=force)] if local_fs else sets
