from __future__ import annotations

from ml.clustering import atypical, fit_kmeans


def _blobs(spark):  # type: ignore[no-untyped-def]
    rows = []
    for cx, cy in ((0.0, 0.0), (10.0, 10.0)):
        rows += [(f"p{cx}-{i}-{j}", cx + i * 0.2, cy + j * 0.2) for i in range(5) for j in range(8)]
    rows.append(("outlier", 30.0, -30.0))
    return spark.createDataFrame(rows, "id string, x double, y double")


def test_kmeans_picks_k_by_silhouette_and_explains_atypical_points(spark) -> None:  # type: ignore[no-untyped-def]
    result = fit_kmeans(_blobs(spark), ["x", "y"], (2, 4))
    assert result is not None
    assert result.points == 81
    assert result.k == max(result.silhouettes, key=result.silhouettes.__getitem__)
    assert set(result.silhouettes) == {2, 3, 4}
    flagged = atypical(result.scored, result.points, far_z=3.0, tiny_fraction=0.05).collect()
    assert [r["id"] for r in flagged] == ["outlier"]
    assert "cluster" in flagged[0]["reason"]


def test_kmeans_needs_three_complete_points(spark) -> None:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame(
        [("a", 1.0, 1.0), ("b", 2.0, None), ("c", 3.0, 3.0)], "id string, x double, y double"
    )
    assert fit_kmeans(df, ["x", "y"], (2, 4)) is None
