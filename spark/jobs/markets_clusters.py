"""Atypical symbol-days by K-Means over the gold tables, tracked in MLflow.

Features per symbol and trade date: the day's return, its volatility, its high-low range
and log(volume / the symbol's 20-day mean volume). The model is fitted on the trailing
``kmeans_lookback_days`` and flags atypical points of the requested dates into
``batch_anomalies_markets_daily`` (partition replace), each with its reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyspark
from pyspark.sql import functions as F

from anomalake.settings import Settings
from ml.clustering import atypical, fit_kmeans
from ml.tracking import use_tracking_server
from spark.tables import Days, read_table, replace_days

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FEATURES = ("day_return_pct", "volatility", "range_pct", "log_volume_ratio")
EXPERIMENT = "markets-kmeans"
OUTPUT_COLUMNS = (
    "trade_date",
    "symbol",
    "detector",
    "reason",
    "cluster",
    "cluster_size",
    "distance",
    "distance_z",
    "k",
    "mlflow_run_id",
)


def symbol_day_features(daily: DataFrame, rolling: DataFrame, rolling_days: int) -> DataFrame:
    """One feature vector per symbol and trade date from the gold summary and rolling means."""
    mean_volume = F.col(f"volume_mean_{rolling_days}")
    return daily.join(
        rolling.select("symbol", "trade_date", mean_volume), ["symbol", "trade_date"]
    ).select(
        "symbol",
        "trade_date",
        "day_return_pct",
        "volatility",
        "range_pct",
        F.log(F.try_divide(F.col("volume"), mean_volume)).alias("log_volume_ratio"),
    )


def _table_version(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])  # type: ignore[index]


def _log_spark_model(model: Any) -> None:
    """Save the Spark model locally in MLflow's format, then upload it as the run's ``model``.

    (``mlflow.spark.log_model`` first tries to write straight to the artifact URI through
    Hadoop, which cannot address ``mlflow-artifacts:``, and logs an error before falling
    back; saving locally first does the same without the noise.)
    """
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = f"{tmp}/model"
        mlflow.spark.save_model(model, local, pip_requirements=[f"pyspark=={pyspark.__version__}"])
        mlflow.log_artifacts(local, artifact_path="model")


def run(spark: SparkSession, settings: Settings, days: Days) -> dict[str, Any]:
    """Fit on the lookback ending at ``days.last``; write the atypical points of ``days``."""
    import mlflow

    m = settings.markets
    source = days.widened(m.kmeans_lookback_days)
    features = symbol_day_features(
        read_table(spark, settings, m.gold_daily_table).where(source.contains("trade_date")),
        read_table(spark, settings, m.gold_rolling_table).where(source.contains("trade_date")),
        m.rolling_days,
    )
    use_tracking_server(settings, EXPERIMENT)
    with mlflow.start_run(run_name=f"kmeans-{days}") as run:
        mlflow.log_params(
            {
                "features": ",".join(FEATURES),
                "k_range": f"{m.kmeans_k[0]}-{m.kmeans_k[1]}",
                "fitted_on": str(source),
                "scored_days": str(days),
                "far_z": m.kmeans_far_z,
                "tiny_fraction": m.kmeans_tiny_fraction,
            }
        )
        for name in (m.gold_daily_table, m.gold_rolling_table):
            mlflow.set_tag(
                f"delta_version.{name}", _table_version(spark, settings.table_path(name))
            )
        result = fit_kmeans(features, FEATURES, m.kmeans_k)
        if result is None:
            mlflow.set_tag("outcome", "too few symbol-days to cluster")
            flagged = spark.createDataFrame(
                [],
                "trade_date date, symbol string, detector string, reason string, cluster int, "
                "cluster_size long, distance double, distance_z double, k int, "
                "mlflow_run_id string",
            )
        else:
            mlflow.log_params({"k": result.k, "points": result.points})
            mlflow.log_metric("silhouette", result.silhouettes[result.k])
            for k, value in result.silhouettes.items():
                mlflow.log_metric("silhouette_by_k", value, step=k)
            _log_spark_model(result.model)
            flagged = (
                atypical(result.scored, result.points, m.kmeans_far_z, m.kmeans_tiny_fraction)
                .where(days.contains("trade_date"))
                .withColumns(
                    {
                        "detector": F.lit("kmeans"),
                        "k": F.lit(result.k),
                        "mlflow_run_id": F.lit(run.info.run_id),
                    }
                )
                .select(*OUTPUT_COLUMNS)
            )
        rows = replace_days(flagged, settings.table_path(m.daily_anomalies_table), days)
        mlflow.log_metric("atypical_symbol_days", rows)
    return {"atypical": rows, "k": None if result is None else result.k, "run_id": run.info.run_id}
