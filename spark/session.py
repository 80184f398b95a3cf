"""The one SparkSession factory: built at a job's entry point and passed down."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from anomalake.install import LOCAL_FS, needs_local_fs, verify
from anomalake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_conf(settings: Settings) -> dict[str, str]:
    """The Spark configuration this project runs with (pure: no session is made)."""
    s = settings.spark
    jars = verify("spark", settings).jars
    conf = {
        "spark.master": s.master,
        "spark.app.name": s.app_name,
        "spark.jars": ",".join(str(j) for j in jars),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": s.driver_memory,
        "spark.ui.enabled": str(s.ui_enabled).lower(),
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": "-Dlog4j2.level=WARN",
        "spark.pyspark.python": sys.executable,
        # pyspark's own pandas serializer trips a pandas FutureWarning on every batch.
        "spark.executorEnv.PYTHONWARNINGS": "ignore::FutureWarning",
        "spark.pyspark.driver.python": sys.executable,
    }
    if settings.profile == "local":
        conf["spark.sql.warehouse.dir"] = str(settings.home / "warehouse")
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        # A single machine: Delta's snapshot reconstruction needs no 50 partitions.
        conf["spark.databricks.delta.snapshotPartitions"] = "2"
    if s.state_store == "rocksdb":
        conf.update(ROCKSDB_STATE)
    conf.update(s.extra_conf)
    if needs_local_fs(settings):
        # after the settings' own class path; their own file systems win
        jar = local_file_system_jar(settings)
        conf[CLASS_PATH] = os.pathsep.join(p for p in (s.extra_conf.get(CLASS_PATH), jar) if p)
        conf.update({k: v for k, v in LOCAL_FILE_SYSTEM.items() if k not in s.extra_conf})
    return conf


ROCKSDB_STATE = {
    "spark.sql.streaming.stateStore.providerClass": (
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
    ),
    # each commit uploads the changes, not a snapshot of the whole store
    "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
}
"""Per-entity state in RocksDB: a query's state is bounded by disk, not the driver's heap.

A query keeps the provider its checkpoint was made with (Spark records it in the offset
log), so a checkpoint made before runs on as it was."""

CLASS_PATH = "spark.driver.extraClassPath"
LOCAL_FILE_SYSTEM = {
    "spark.hadoop.fs.file.impl": "io.anomalake.fs.LocalFileSystem",
    "spark.hadoop.fs.AbstractFileSystem.file.impl": "io.anomalake.fs.LocalFs",
}
"""Hadoop's ``file:`` scheme, for both of its APIs, without forked ``chmod``/``readlink``."""


def local_file_system_jar(settings: Settings) -> str:
    """The ``local-fs`` jar (``infra/java``), whose file system :data:`LOCAL_FILE_SYSTEM` names.

    Hadoop without its native library forks a process per file created and two per
    ``FileContext`` rename; a micro-batch does dozens of each (docs/benchmarks.md). The jar
    goes on the driver's own class path (after any the settings name), where Hadoop looks
    file systems up; with a local master the executors run in the driver's JVM
    (:func:`~anomalake.install.needs_local_fs`).
    """
    (jar,) = verify(LOCAL_FS, settings).jars
    return str(jar)


def get_spark(settings: Settings) -> SparkSession:
    """Build (or return the running) SparkSession with Delta and the Kafka connector."""
    from pyspark.sql import SparkSession

    # Workers must run this venv's interpreter, not whatever `python3` is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
