from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from anomalake.settings import Settings, load_settings, profile_from_env


def test_profile_defaults_to_local() -> None:
    assert profile_from_env({}) == "local"
    assert profile_from_env({"ANOMALAKE_PROFILE": " Cluster "}) == "cluster"


def test_unknown_profile_is_rejected() -> None:
    with pytest.raises(ValueError, match="expected 'local' or 'cluster'"):
        profile_from_env({"ANOMALAKE_PROFILE": "prod"})


def test_local_profile_derives_every_location_from_home(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Settings(profile="local", home=tmp_path)
    assert s.table_path("bronze_markets") == f"{tmp_path}/lake/bronze_markets"
    assert s.checkpoint_path("land") == f"{tmp_path}/checkpoints/land"
    assert s.mlflow_backend_store == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert s.airflow_env()["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert s.airflow_env()["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert s.name_prefix == "local-"


def test_cluster_profile_names_every_missing_address(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("ANOMALAKE_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(ValidationError) as err:
        Settings(profile="cluster")
    for name in (
        "SPARK__MASTER",
        "KAFKA__BOOTSTRAP_SERVERS",
        "MLFLOW__TRACKING_URI",
        "LAKE_ROOT",
        "CHECKPOINT_ROOT",
    ):
        assert name in str(err.value)


def test_cluster_profile_from_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    env = {
        "ANOMALAKE_PROFILE": "cluster",
        "ANOMALAKE_SPARK__MASTER": "spark://spark-master:7077",
        "ANOMALAKE_KAFKA__BOOTSTRAP_SERVERS": "b1:9093,b2:9093",
        "ANOMALAKE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "ANOMALAKE_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "ANOMALAKE_KAFKA__SASL_USERNAME": "svc",
        "ANOMALAKE_KAFKA__SASL_PASSWORD": "pw",
        "ANOMALAKE_MLFLOW__TRACKING_URI": "https://mlflow.internal",
        "ANOMALAKE_LAKE_ROOT": "s3a://lake/tables/",
        "ANOMALAKE_CHECKPOINT_ROOT": "s3a://lake/checkpoints",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    assert s.profile == "cluster"
    assert s.table_path("silver_trades") == "s3a://lake/tables/silver_trades"
    assert s.mlflow.uri == "https://mlflow.internal"
    assert s.name_prefix == "cluster-"
    conf = s.kafka.client_config()
    assert conf["bootstrap.servers"] == "b1:9093,b2:9093"
    assert conf["security.protocol"] == "SASL_SSL"
    opts = s.kafka.spark_options()
    assert "ScramLoginModule" in opts["kafka.sasl.jaas.config"]
    assert 'username="svc"' in opts["kafka.sasl.jaas.config"]


def test_local_kafka_is_plaintext_loopback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Settings(profile="local", home=tmp_path)
    assert s.kafka.servers == f"127.0.0.1:{s.kafka.port}"
    assert "kafka.sasl.jaas.config" not in s.kafka.spark_options()
    assert s.topic_partitions[s.markets.topic] >= 1


def test_markets_state_partitions_follow_the_local_cores_unless_set(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = load_settings(home=tmp_path)
    assert s.spark.master == "local[2]" and s.markets_state_partitions == 2
    wider = s.model_copy(update={"spark": s.spark.model_copy(update={"master": "local[8]"})})
    assert wider.markets_state_partitions == 8
    for master, cores in (("local", 1), ("local[*]", os.cpu_count()), ("local[3,2]", 3)):
        m = s.model_copy(update={"spark": s.spark.model_copy(update={"master": master})})
        assert m.markets_state_partitions == cores, master
    remote = s.model_copy(update={"spark": s.spark.model_copy(update={"master": "spark://h:7077"})})
    assert remote.markets_state_partitions == s.spark.shuffle_partitions
    assert s.with_markets_query("q", state_partitions=3).markets_state_partitions == 3
