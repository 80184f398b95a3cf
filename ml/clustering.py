"""K-Means over per-entity feature vectors: k chosen by silhouette, atypical points explained.

Generic: any use case passes a DataFrame and the names of its feature columns. Fitting
and scoring are Spark MLlib (scaling, K-Means, silhouette); nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Window
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class Clustering:
    """The chosen model, the silhouette of every k tried, and the scored points."""

    model: PipelineModel
    k: int
    silhouettes: dict[int, float]
    scored: DataFrame
    points: int


def fit_kmeans(
    df: DataFrame, features: Sequence[str], k_range: tuple[int, int], seed: int = 7
) -> Clustering | None:
    """K-Means on standardised ``features`` with the k of best silhouette in ``k_range``.

    Every k in ``k_range`` (inclusive) is fitted; ties go to the smaller k.

    Rows with a null or NaN feature cannot be placed and are left out. Returns None when
    fewer than three points remain (no silhouette exists).

    ``scored`` is ``df`` plus ``cluster``, ``distance`` (Euclidean, in standardised units,
    to the point's centroid) and ``cluster_size``.
    """
    assembler = VectorAssembler(
        inputCols=list(features), outputCol="raw_features", handleInvalid="skip"
    )
    scaler = StandardScaler(
        inputCol="raw_features", outputCol="features", withMean=True, withStd=True
    )
    prep = Pipeline(stages=[assembler, scaler]).fit(df)
    prepared = prep.transform(df).cache()
    points = prepared.count()
    lo, hi = k_range
    hi = min(hi, points - 1)
    if points < 3 or hi < lo:
        prepared.unpersist()
        return None
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="cluster")
    fitted: dict[int, KMeansModel] = {}
    silhouettes: dict[int, float] = {}
    for k in range(lo, hi + 1):
        kmeans = KMeans(k=k, seed=seed, featuresCol="features", predictionCol="cluster")
        fitted[k] = kmeans.fit(prepared)
        silhouettes[k] = float(evaluator.evaluate(fitted[k].transform(prepared)))
    best = max(silhouettes, key=lambda k: (silhouettes[k], -k))
    model = PipelineModel(stages=[*prep.stages, fitted[best]])
    centers = F.array(
        *(F.array(*(F.lit(float(x)) for x in c)) for c in fitted[best].clusterCenters())
    )
    center = F.element_at(centers, F.col("cluster") + 1)
    squares = F.zip_with(vector_to_array(F.col("features")), center, lambda a, b: (a - b) * (a - b))
    scored = (
        fitted[best]
        .transform(prepared)
        .withColumn("distance", F.sqrt(F.aggregate(squares, F.lit(0.0), lambda s, x: s + x)))
        .withColumn("cluster_size", F.count(F.lit(1)).over(Window.partitionBy("cluster")))
        .drop("raw_features", "features")
    )
    prepared.unpersist()
    return Clustering(model, best, silhouettes, scored, points)


def atypical(scored: DataFrame, points: int, far_z: float, tiny_fraction: float) -> DataFrame:
    """Scored points that are atypical, each with a ``reason``.

    Atypical: farther from its centroid than ``far_z`` standard deviations above its
    cluster's mean distance, or in a cluster holding fewer than ``tiny_fraction`` of all
    points. Adds ``distance_z`` (null where a cluster's distances do not vary).
    """
    in_cluster = Window.partitionBy("cluster")
    z = F.try_divide(
        F.col("distance") - F.avg("distance").over(in_cluster),
        F.stddev_samp("distance").over(in_cluster),
    )
    reasons = F.concat_ws(
        "; ",
        F.when(
            F.col("distance_z") > far_z,
            F.format_string(
                "far from its centroid: distance %.2f is %.1f std above cluster %d's mean",
                "distance",
                "distance_z",
                "cluster",
            ),
        ),
        F.when(
            F.col("cluster_size") < F.lit(tiny_fraction * points),
            F.format_string(
                "in a tiny cluster: cluster %d holds %d of %d points",
                "cluster",
                "cluster_size",
                F.lit(points),
            ),
        ),
    )
    return (
        scored.withColumn("distance_z", z)
        .withColumn("reason", reasons)
        .where(F.col("reason") != "")
    )
