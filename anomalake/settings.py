"""One settings model for every component, chosen by ``ANOMALAKE_PROFILE``.

``local`` (the default) is the embedded single-machine stack that ``anomalake up`` starts:
a KRaft Kafka broker on loopback, an MLflow server on SQLite with a local artifact store,
Airflow on SQLite and Spark in ``local[2]`` with Delta tables under ``ANOMALAKE_HOME``.

``cluster`` points the same code at real shared engines: a Spark master, a Kafka cluster
over SASL_SSL, MLflow on a database with an object-store artifact root and Delta tables on
object storage. It has no embedded defaults for those addresses: each must be given, as an
environment variable such as ``ANOMALAKE_KAFKA__BOOTSTRAP_SERVERS`` (nested fields use
``__``), and a missing one is a validation error that names it.

Every host, port, topic and path in the project is read from :func:`get_settings`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from anomalake.usecases.spec import UseCaseSpec

PROFILE_ENV = "ANOMALAKE_PROFILE"
PROJECT_ROOT = Path(__file__).resolve().parents[1]

Profile = Literal["local", "cluster"]


class KafkaSettings(BaseModel):
    """Kafka connection, topics and partition counts."""

    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    bootstrap_servers: str | None = Field(
        default=None, description="host:port list; derived from host and port when unset"
    )
    security_protocol: Literal["PLAINTEXT", "SASL_SSL", "SSL", "SASL_PLAINTEXT"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    starting_offsets: str = Field(
        default="earliest",
        description="where a stream on a new checkpoint starts: earliest, latest, or Spark's "
        'per-partition JSON such as {"markets.bars": {"0": 120, "1": 97}}',
    )
    topics: dict[str, int] = Field(
        default_factory=dict,
        description="topic name -> partition count, added to or overriding the use cases' "
        "topics (Settings.topic_partitions) that `anomalake up` creates",
    )
    replication_factor: int = 1
    alerts_topic: str = "alerts"
    broker_heap: str = "512m"

    @property
    def servers(self) -> str:
        """The bootstrap servers string clients use."""
        return self.bootstrap_servers or f"{self.host}:{self.port}"

    def client_config(self) -> dict[str, str | int | float | bool]:
        """Librdkafka (confluent-kafka) connection properties."""
        conf: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf

    def spark_options(self) -> dict[str, str]:
        """Options for Spark's Kafka source and sink (``kafka.``-prefixed)."""
        opts = {
            "kafka.bootstrap.servers": self.servers,
            "kafka.security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            opts["kafka.sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username and self.sasl_password and self.sasl_mechanism:
            module = (
                "org.apache.kafka.common.security.scram.ScramLoginModule"
                if self.sasl_mechanism.upper().startswith("SCRAM")
                else "org.apache.kafka.common.security.plain.PlainLoginModule"
            )
            opts["kafka.sasl.jaas.config"] = (
                f'{module} required username="{self.sasl_username}" '
                f'password="{self.sasl_password}";'
            )
        if self.ssl_ca_location:
            opts["kafka.ssl.truststore.location"] = self.ssl_ca_location
        return opts


class MlflowSettings(BaseModel):
    """MLflow tracking server and registry."""

    host: str = "127.0.0.1"
    port: int = 5000
    tracking_uri: str | None = Field(default=None, description="derived from host:port if unset")
    backend_store_uri: str | None = Field(
        default=None, description="server's backend store; SQLite under home when unset"
    )
    artifact_root: str | None = Field(
        default=None, description="server's artifact root; a local folder under home when unset"
    )
    experiment_prefix: str = Field(
        default="", description="prefix of experiment and model names; the profile when empty"
    )

    @property
    def uri(self) -> str:
        """The tracking URI clients use."""
        return self.tracking_uri or f"http://{self.host}:{self.port}"


class AirflowSettings(BaseModel):
    """Airflow metadata database and API server."""

    host: str = "127.0.0.1"
    port: int = 8080
    parallelism: int = Field(default=2, description="LocalExecutor worker processes")
    sql_alchemy_conn: str | None = Field(default=None, description="SQLite under home when unset")


class MarketsSettings(UseCaseSpec):
    """The markets use case (``anomalake/usecases/markets.yaml``): rules, tables, trigger."""

    USE_CASE: ClassVar[str] = "markets"

    a1_threshold: float = Field(default=0.005, description="A1: |close move| > this fraction")
    a2_factor: float = Field(default=1.02, description="A2: volume > factor x window mean")
    a2_window_minutes: int = 10
    a2_min_history: int = Field(default=10, description="bars in the window needed for A2")
    flush_after_seconds: float = Field(
        default=5.0, description="an idle symbol's pending bars are evaluated after this"
    )
    silver_table: str = "silver_markets"
    gaps_table: str = "gaps_markets"
    batch_anomalies_table: str = "batch_anomalies_markets"
    reconciliation_table: str = "reconciliation_markets"
    reconciliation_details_table: str = Field(
        default="reconciliation_markets_details",
        description="each anomaly the stream and the batch disagree on, with the reason",
    )
    gold_daily_table: str = "gold_markets_daily"
    gold_stats_table: str = "gold_markets_stats"
    gold_histograms_table: str = "gold_markets_histograms"
    gold_rolling_table: str = "gold_markets_rolling"
    daily_anomalies_table: str = Field(
        default="batch_anomalies_markets_daily",
        description="symbol-days found atypical by the batch layer (K-Means)",
    )
    histogram_bins: int = 20
    rolling_days: int = Field(default=20, description="trading days in the rolling means")
    kmeans_k: tuple[int, int] = Field(default=(2, 6), description="k tried, by silhouette")
    kmeans_lookback_days: int = Field(
        default=90, description="calendar days of symbol-days the clustering is fitted on"
    )
    kmeans_far_z: float = Field(
        default=3.0, description="atypical: distance to centroid > this many std above mean"
    )
    kmeans_tiny_fraction: float = Field(
        default=0.02, description="atypical: cluster holds fewer than this share of points"
    )


class HostsSettings(UseCaseSpec):
    """The hosts use case (``anomalake/usecases/hosts.yaml``): training data, models, promotion.

    The data paths default to ``<home>/data/hosts/nsl-kdd`` (a folder holding
    ``KDDTrain+_20Percent.txt``) and ``<home>/data/hosts/ton-iot`` (ToN-IoT Linux CSVs, or
    files written by :func:`anomalake.generators.hosts.write_host_files`); point them at real
    data with ``ANOMALAKE_HOSTS__NSLKDD_PATH=/data/nsl-kdd`` and
    ``ANOMALAKE_HOSTS__TONIOT_PATH=/data/ton-iot/linux`` (see :attr:`Settings.nslkdd_path`).
    """

    USE_CASE: ClassVar[str] = "hosts"

    nslkdd_path: Path | None = Field(
        default=None, description="NSL-KDD folder; <home>/data/hosts/nsl-kdd when unset"
    )
    toniot_path: Path | None = Field(
        default=None,
        description="ToN-IoT Linux CSV or folder; <home>/data/hosts/ton-iot when unset",
    )
    targets: tuple[str, ...] = Field(
        default=("nslkdd", "toniot-memory"),
        description="what the retraining DAG trains: nslkdd and/or toniot-<activity>",
    )
    nslkdd_model: str = Field(
        default="hosts-nslkdd", description="registered model name, after the environment prefix"
    )
    promotion_metric: str = Field(
        default="roc_auc", description="a Metrics field compared on the holdout"
    )
    promotion_margin: float = Field(
        default=0.005,
        description="the challenger must beat the champion by more than this to be promoted",
    )
    holdout_fraction: float = Field(
        default=0.1, description="NSL-KDD rows kept out of training for promotion (by row hash)"
    )
    holdout_max_rows: int = Field(
        default=100_000, description="larger holdouts are sampled down to this many rows"
    )
    min_training_rows: int = Field(
        default=1000, description="fewer rows than this fail the training-data quality gate"
    )

    def activity_topic(self, activity: str) -> str:
        """Kafka topic of one activity's events (``hosts.process``, ``hosts.memory``)."""
        return self.topic_of(activity)

    def scored_table(self, activity: str) -> str:
        """Delta table of the scored events of one activity."""
        return self.named(self.bronze_table, activity)

    def backtest_table(self, activity: str) -> str:
        """Delta table of stored events re-scored by a backtest."""
        return f"backtest_hosts_{activity}"

    def activity_counts_table(self, activity: str) -> str:
        """Delta table of events and predicted attacks per host and window."""
        return self.named(str(self.counts_table), activity)

    def model_name(self, prefix: str, activity: str) -> str:
        """Registered model the stream scores ``activity`` with (``local-hosts-toniot-process``)."""
        return prefix + self.toniot_model.format(stream=activity)

    @property
    def toniot_model(self) -> str:
        """The registered name of the ToN-IoT models, ``{stream}`` for the activity."""
        if self.scorer.model is None:
            raise ValueError("the hosts spec names no model")
        return self.scorer.model.name


SKAB_SENSORS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)


class InfraSettings(UseCaseSpec):
    """The infrastructure use case (``anomalake/usecases/infra.yaml``): sensors per asset.

    Readings are ``{"v": 1, "asset", "timestamp", "<sensor>": value, ...}`` on the
    ``infra.sensors`` topic, keyed by asset. The detectors and YAML rules each asset runs
    are declared in :attr:`detectors_config` (the shipped default is
    ``anomalake/detection/configs/infra.yaml``).
    """

    USE_CASE: ClassVar[str] = "infra"

    detectors_config: Path | None = Field(
        default=None, description="YAML of detectors, rules and combination; the spec's when unset"
    )
    backfill_table: str = Field(
        default="backfill_scores_infra", description="scores recomputed by a batch backfill"
    )

    @property
    def sensors(self) -> tuple[str, ...]:
        """The sensor fields of a reading, in the spec's order (SKAB's eight by default)."""
        return tuple(self.fields)


class WearablesSettings(UseCaseSpec):
    """The wearables use case (``anomalake/usecases/wearables.yaml``): E4 frames per device.

    A record is one device-second of every signal (:func:`anomalake.loaders.e4.frames`);
    features are computed over the last ``window_seconds`` every ``step_seconds``, the
    same in the stream, training and evaluation.
    """

    USE_CASE: ClassVar[str] = "wearables"

    window_seconds: int = Field(default=60, ge=10, description="a window's length")
    step_seconds: int = Field(default=10, ge=1, description="a window ends this often")
    train_wearers: int = Field(default=16, ge=2, description="generated wearers to train on")
    train_hours: float = Field(default=6.0, gt=0, description="hours per training wearer")
    train_seed: int = Field(
        default=1000, description="first seed of training data (evaluation uses others)"
    )
    calibration_wearers: int = Field(
        default=4,
        ge=0,
        description="generated wearers, never fitted on, the operating point is chosen on "
        "(with the validation wearers)",
    )
    calibration_hours: float = Field(default=24.0, gt=0, description="hours per such wearer")
    false_alarms_per_day: float = Field(
        default=1.0,
        ge=0,
        description="the false alarms per wearer-day the operating point may cost on them",
    )


class AlertsSettings(BaseModel):
    """Alert lifecycle and delivery to people, shared by every use case.

    A channel is on when it is configured: the webhook when ``webhook_url`` is set, e-mail
    when ``smtp_host`` and ``email_to`` are. The alerts Kafka topic always receives them.
    """

    suppress_seconds: float = Field(
        default=300.0,
        description="detections this soon after an alert was resolved fold into it",
    )
    severity_cuts: tuple[float, float, float] = Field(
        default=(0.9, 0.99, 0.999), description="score cut-offs of medium, high and critical"
    )
    webhook_url: str | None = None
    webhook_timeout_seconds: float = 5.0
    smtp_host: str | None = None
    smtp_port: int = 25
    email_from: str = "anomalake@localhost"
    email_to: tuple[str, ...] = ()
    retry_base_seconds: float = Field(default=1.0, description="first back-off of a failed send")
    retry_max_seconds: float = Field(default=300.0, description="longest back-off")
    max_delivery_attempts: int = Field(
        default=12,
        description="a notification that failed this many times is dead-lettered: kept with "
        "its last error, never retried (`Outbox.dead`)",
    )
    outbox_retention_seconds: float = Field(
        default=7 * 86_400.0,
        description="delivered and dead-lettered notifications older than this are pruned",
    )
    deliver_every_seconds: float = Field(
        default=2.0, description="how often the stream's delivery thread drains the outbox"
    )


class SparkSettings(BaseModel):
    """How the SparkSession factory builds a session."""

    master: str = "local[2]"
    app_name: str = "anomalake"
    shuffle_partitions: int = 4
    driver_memory: str = "2g"
    ui_enabled: bool = False
    state_store: Literal["rocksdb", "hdfs"] = Field(
        default="rocksdb",
        description="where streaming state lives: RocksDB (off the JVM heap, changelog "
        "checkpoints) or Spark's default in-memory map; fixed in a checkpoint when made",
    )
    extra_conf: dict[str, str] = Field(default_factory=dict)


class Settings(BaseSettings):
    """All of Anomalake's configuration; build it with :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="ANOMALAKE_", env_nested_delimiter="__", extra="ignore"
    )

    profile: Profile = "local"
    home: Path = Field(
        default=PROJECT_ROOT / ".anomalake",
        description="run folder, logs, local stores (local profile)",
    )
    lake_root: str | None = Field(
        default=None, description="root URI of the Delta tables; <home>/lake when unset"
    )
    checkpoint_root: str | None = Field(
        default=None, description="root URI of streaming checkpoints; <home>/checkpoints when unset"
    )
    jars_dir: Path = Field(
        default=PROJECT_ROOT / "infra" / ".cache" / "jars",
        description="where `anomalake install` puts the Maven-resolved jars",
    )
    dags_folder: Path = PROJECT_ROOT / "dags"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    markets: MarketsSettings = Field(default_factory=lambda: MarketsSettings.model_validate({}))
    hosts: HostsSettings = Field(default_factory=lambda: HostsSettings.model_validate({}))
    infra: InfraSettings = Field(default_factory=lambda: InfraSettings.model_validate({}))
    wearables: WearablesSettings = Field(
        default_factory=lambda: WearablesSettings.model_validate({})
    )
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)

    @model_validator(mode="after")
    def _cluster_needs_addresses(self) -> Settings:
        if self.profile != "cluster":
            return self
        missing = []
        if self.spark.master.startswith("local"):
            missing.append("ANOMALAKE_SPARK__MASTER (e.g. spark://host:7077)")
        if not self.kafka.bootstrap_servers:
            missing.append("ANOMALAKE_KAFKA__BOOTSTRAP_SERVERS")
        if not self.mlflow.tracking_uri:
            missing.append("ANOMALAKE_MLFLOW__TRACKING_URI")
        if not self.lake_root:
            missing.append("ANOMALAKE_LAKE_ROOT (e.g. s3a://bucket/lake)")
        if not self.checkpoint_root:
            missing.append("ANOMALAKE_CHECKPOINT_ROOT (e.g. s3a://bucket/checkpoints)")
        if missing:
            raise ValueError("cluster profile needs: " + ", ".join(missing))
        return self

    @property
    def markets_state_partitions(self) -> int:
        """Partitions of the markets speed layer's state store."""
        return self.state_partitions(self.markets)

    def state_partitions(self, spec: UseCaseSpec) -> int:
        """Partitions of a speed layer's state store (``spec.state_partitions`` if set).

        On one machine, one per core: each is a task per micro-batch, and more tasks than
        cores only queue (batches took 2.1 s with 4 partitions on 2 cores, 1.3-1.7 s with 2).
        """
        if spec.state_partitions:
            return spec.state_partitions
        return self.local_cores or self.spark.shuffle_partitions

    @property
    def local_cores(self) -> int | None:
        """The cores of a master that runs Spark inside this JVM; None for any other.

        ``local`` has one, ``local[N]`` N, ``local[*]`` the machine's.
        """
        master = self.spark.master
        if master == "local":
            return 1
        if master.startswith("local["):
            cores = master[6:].split(",")[0].rstrip("]")
            return (os.cpu_count() or 1) if cores == "*" else int(cores)
        return None

    # --- derived locations -------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """Pid files and logs of the local stack."""
        return self.home / "run"

    @property
    def reports_dir(self) -> Path:
        """Reports people open: Data Docs (``quality/``) and charts (``histograms/``)."""
        return self.home / "reports"

    @property
    def topic_partitions(self) -> dict[str, int]:
        """Topics ``anomalake up`` creates -> partitions (use cases', then ``kafka.topics``)."""
        wanted = {
            topic: spec.topic_partitions
            for spec in self.use_cases.values()
            for topic in spec.topics()
        }
        return {**wanted, self.kafka.alerts_topic: 1, **self.kafka.topics}

    @property
    def use_cases(self) -> dict[str, UseCaseSpec]:
        """Every use case's spec by name (its settings section), in the registry's order."""
        from anomalake.usecases import names
        from anomalake.usecases.spec import read_declaration

        return {
            name: getattr(self, name, None) or UseCaseSpec(**read_declaration(name))
            for name in names()
        }

    def use_case(self, name: str) -> UseCaseSpec:
        """The spec (settings section) of use case ``name``; one line naming the others if none."""
        from anomalake.errors import AnomalakeError

        if name not in self.use_cases:
            raise AnomalakeError(
                f"unknown use case {name!r}", f"use one of {', '.join(self.use_cases)}"
            )
        return self.use_cases[name]

    @property
    def alert_tables(self) -> dict[str, str]:
        """The alert-lifecycle table of each use case."""
        return {name: spec.alerts_table for name, spec in self.use_cases.items()}

    @property
    def alerts_outbox(self) -> Path:
        """The durable SQLite queue of notifications not yet accepted by their channel."""
        return self.run_dir / "alerts-outbox.sqlite"

    @property
    def infra_detectors_config(self) -> Path:
        """The YAML of the infra detectors (``ANOMALAKE_INFRA__DETECTORS_CONFIG``)."""
        declared = self.infra.scorer.detectors
        if self.infra.detectors_config is None and declared is None:
            raise ValueError("the infra spec names no detector set")
        return self.infra.detectors_config or PROJECT_ROOT / str(declared)

    @property
    def nslkdd_path(self) -> Path:
        """NSL-KDD training folder (``ANOMALAKE_HOSTS__NSLKDD_PATH``)."""
        return self.hosts.nslkdd_path or self.home / "data" / "hosts" / "nsl-kdd"

    @property
    def toniot_path(self) -> Path:
        """ToN-IoT Linux CSV or folder (``ANOMALAKE_HOSTS__TONIOT_PATH``)."""
        return self.hosts.toniot_path or self.home / "data" / "hosts" / "ton-iot"

    @property
    def lake(self) -> str:
        """Root of the Delta tables."""
        return self.lake_root or str(self.home / "lake")

    @property
    def checkpoints(self) -> str:
        """Root of streaming checkpoints."""
        return self.checkpoint_root or str(self.home / "checkpoints")

    def table_path(self, name: str) -> str:
        """Location of the Delta table called ``name`` (e.g. ``bronze_markets``)."""
        return f"{self.lake.rstrip('/')}/{name}"

    def checkpoint_path(self, query: str) -> str:
        """Checkpoint location of the streaming query called ``query``."""
        return f"{self.checkpoints.rstrip('/')}/{query}"

    def with_markets_query(self, name: str, **markets: Any) -> Settings:
        """A copy whose markets query, checkpoint and tables are all called after ``name``.

        For a second speed layer beside the first (a backfill, a benchmark, a test).
        """
        update = {
            "bronze_table": f"{name}_bronze",
            "quarantine_table": f"{name}_quarantine",
            "alerts_table": f"{name}_alerts",
            "query_name": name,
            **markets,
        }
        return self.model_copy(update={"markets": self.markets.model_copy(update=update)})

    @property
    def name_prefix(self) -> str:
        """Prefix of MLflow experiment and model names, e.g. ``local-``."""
        return self.mlflow.experiment_prefix or f"{self.profile}-"

    @property
    def mlflow_backend_store(self) -> str:
        """Backend store URI of the MLflow server."""
        return self.mlflow.backend_store_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> str:
        """Default artifact root of the MLflow server."""
        return self.mlflow.artifact_root or str(self.home / "mlflow" / "artifacts")

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME of the local Airflow."""
        return self.home / "airflow"

    def airflow_env(self) -> dict[str, str]:
        """Environment that points Airflow at this project's home, DAGs and database."""
        conn = self.airflow.sql_alchemy_conn or f"sqlite:///{self.airflow_home / 'airflow.db'}"
        return {
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn,
            "AIRFLOW__API__HOST": self.airflow.host,
            "AIRFLOW__API__PORT": str(self.airflow.port),
            "AIRFLOW__API__BASE_URL": f"http://{self.airflow.host}:{self.airflow.port}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": str(self.profile == "local"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.airflow_home / "logs"),
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
            "AIRFLOW__CORE__PARALLELISM": str(self.airflow.parallelism),
        }


def profile_from_env(env: dict[str, str] | None = None) -> Profile:
    """The profile named by ``ANOMALAKE_PROFILE`` (``local`` when unset)."""
    value = (env if env is not None else os.environ).get(PROFILE_ENV, "local").strip().lower()
    if value not in ("local", "cluster"):
        raise ValueError(f"{PROFILE_ENV}={value!r}: expected 'local' or 'cluster'")
    return value  # type: ignore[return-value]


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, with ``overrides`` taking precedence."""
    overrides.setdefault("profile", profile_from_env())
    return Settings(**overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after env changes)."""
    return load_settings()
