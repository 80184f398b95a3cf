"""The SparkSession factory: the local profile's file system, through the JVM it runs in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from py4j.protocol import Py4JJavaError

from anomalake.settings import Settings
from spark.session import LOCAL_FILE_SYSTEM, spark_conf

pytestmark = pytest.mark.integration


def _hadoop(spark):  # type: ignore[no-untyped-def]
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    root = jvm.java.net.URI("file:///")
    return (
        jvm,
        jvm.org.apache.hadoop.fs.FileSystem.get(root, conf),
        (jvm.org.apache.hadoop.fs.FileContext.getFileContext(root, conf)),
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_local_profile_puts_the_local_fs_jar_on_the_class_path(settings: Settings) -> None:
    conf = spark_conf(settings)
    assert conf["spark.driver.extraClassPath"].endswith("anomalake-local-fs.jar")
    assert {k: conf[k] for k in LOCAL_FILE_SYSTEM} == LOCAL_FILE_SYSTEM
    # a class path of the user's comes first; a master with executors elsewhere goes without
    spark = settings.spark.model_copy(
        update={"extra_conf": {"spark.driver.extraClassPath": "/x.jar"}}
    )
    mine = spark_conf(settings.model_copy(update={"spark": spark}))["spark.driver.extraClassPath"]
    assert mine.split(os.pathsep) == ["/x.jar", conf["spark.driver.extraClassPath"]]
    remote = settings.spark.model_copy(update={"master": "spark://elsewhere:7077"})
    conf = spark_conf(settings.model_copy(update={"spark": remote}))
    assert "spark.driver.extraClassPath" not in conf and not set(LOCAL_FILE_SYSTEM) & set(conf)


def test_both_hadoop_apis_use_the_local_fs_classes(spark) -> None:  # type: ignore[no-untyped-def]
    _, fs, fc = _hadoop(spark)
    assert fs.getClass().getName() == "io.anomalake.fs.LocalFileSystem"
    assert fs.getRaw().getClass().getName() == "io.anomalake.fs.RawLocalFileSystem"
    assert fc.getDefaultFileSystem().getClass().getName() == "io.anomalake.fs.LocalFs"


def test_files_get_the_permissions_asked_for(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    jvm, fs, _ = _hadoop(spark)
    perm = jvm.org.apache.hadoop.fs.permission.FsPermission
    target = tmp_path / "part.parquet"
    path = jvm.org.apache.hadoop.fs.Path(str(target))
    out = fs.create(path, perm.valueOf("-rw-r-----"), True, 4096, 1, 1 << 20, None)
    out.write(b"x")
    out.close()
    assert _mode(target) == 0o640
    fs.setPermission(path, perm.valueOf("-rwx---r-x"))
    assert _mode(target) == 0o705
    directory = jvm.org.apache.hadoop.fs.Path(str(tmp_path / "d"))
    assert fs.mkdirs(directory, perm.valueOf("drwxr-x---"))
    assert _mode(tmp_path / "d") == 0o750
    fs.setPermission(directory, perm.valueOf("drwxrwxrwt"))
    assert _mode(tmp_path / "d") == 0o1777  # the sticky bit too
    os.chmod(tmp_path / "d", 0o2750)
    fs.setPermission(directory, perm.valueOf("drwx------"))
    assert _mode(tmp_path / "d") == 0o2700  # a directory keeps its set-group-ID bit (chmod 0700)


def test_link_status_and_renames_keep_hadoops_semantics(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    jvm, _, fc = _hadoop(spark)
    hpath = jvm.org.apache.hadoop.fs.Path
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    os.symlink(tmp_path / "a", tmp_path / "link")

    assert not fc.getFileLinkStatus(hpath(str(tmp_path / "a"))).isSymlink()
    link = fc.getFileLinkStatus(hpath(str(tmp_path / "link")))
    assert link.isSymlink()
    assert link.getSymlink().toUri().getPath() == str(tmp_path / "a")
    with pytest.raises(Py4JJavaError, match="FileNotFoundException"):
        fc.getFileLinkStatus(hpath(str(tmp_path / "missing")))

    gateway = spark.sparkContext._gateway
    rename = jvm.org.apache.hadoop.fs.Options.Rename
    no_overwrite = gateway.new_array(rename, 1)
    no_overwrite[0] = rename.NONE
    with pytest.raises(Py4JJavaError, match="FileAlreadyExistsException"):
        fc.rename(hpath(str(tmp_path / "a")), hpath(str(tmp_path / "b")), no_overwrite)
    fc.rename(hpath(str(tmp_path / "a")), hpath(str(tmp_path / "c")), no_overwrite)
    assert (tmp_path / "c").read_text() == "a"
    assert not (tmp_path / "a").exists()


def test_streaming_state_lives_in_rocksdb_unless_settings_say_otherwise(
    settings: Settings, spark
) -> None:  # type: ignore[no-untyped-def]
    from spark.session import ROCKSDB_STATE

    provider = "spark.sql.streaming.stateStore.providerClass"
    assert spark_conf(settings)[provider] == ROCKSDB_STATE[provider]
    assert spark.conf.get(provider).endswith("RocksDBStateStoreProvider")  # the suite's session
    hdfs = settings.spark.model_copy(update={"state_store": "hdfs"})
    assert provider not in spark_conf(settings.model_copy(update={"spark": hdfs}))
