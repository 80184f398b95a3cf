"""The registry's current champion, kept fresh while a stream or a replay scores with it.

:class:`ChampionModel` loads ``models:/<name>@champion``, re-checks the alias at most every
``refresh_seconds`` and switches to a new version without a restart. If the tracking
server cannot be reached it keeps scoring with the model it has and logs a warning (and
raises only if it never had one). Every scored row says which model name and version
scored it. One instance per Python worker process (:func:`champion`), so a streaming
query's UDF calls reuse the loaded model across micro-batches.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from anomalake.errors import AnomalakeError
from ml.registry import CHAMPION, TAG_SERVING

if TYPE_CHECKING:
    from anomalake.settings import Settings
    from anomalake.usecases.spec import UseCaseSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version in memory, with how it is to be served.

    ``serving``: the version's ``anomalake.serving.*`` tags, prefix removed — the operating
    point chosen at training (``threshold``, ``confirm_windows``), the feature version.
    """

    name: str
    version: str
    model: Any
    serving: dict[str, str] = field(default_factory=dict)

    @property
    def threshold(self) -> float | None:
        """The chosen score threshold of a model of more than two classes, if tagged."""
        value = self.serving.get("threshold")
        return float(value) if value is not None else None

    @property
    def confirm_windows(self) -> int | None:
        """How many abnormal windows in a row confirm an episode, if tagged."""
        value = self.serving.get("confirm_windows")
        return int(value) if value is not None else None


class ChampionModel:
    """The champion of one registered model, re-resolved at most every ``refresh_seconds``."""

    def __init__(
        self,
        tracking_uri: str,
        name: str,
        refresh_seconds: float = 30.0,
        alias: str = CHAMPION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self.alias = alias
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.current: LoadedModel | None = None
        self._checked_at: float | None = None
        # Fail fast when the server is down (MLflow's client retries for minutes by default);
        # the stream then keeps the model it has. Worker-process environment only.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _resolve_version(self) -> str:
        return str(self._client().get_model_version_by_alias(self.name, self.alias).version)

    def _load(self, version: str) -> LoadedModel:
        import mlflow

        mlflow.set_registry_uri(self.tracking_uri)
        mlflow.set_tracking_uri(self.tracking_uri)
        model = mlflow.sklearn.load_model(f"models:/{self.name}/{version}")
        tags = self._client().get_model_version(self.name, version).tags
        serving = {k[len(TAG_SERVING) :]: v for k, v in tags.items() if k.startswith(TAG_SERVING)}
        return LoadedModel(self.name, version, model, serving)

    def get(self) -> LoadedModel:
        """The model to score with now (checking the alias if the refresh period passed)."""
        now = self.clock()
        due = self._checked_at is None or now - self._checked_at >= self.refresh_seconds
        if not due and self.current is not None:
            return self.current
        try:
            version = self._resolve_version()
            if self.current is None or self.current.version != version:
                loaded = self._load(version)
                previous = self.current.version if self.current else None
                self.current = loaded
                log.info(
                    "scoring with %s version %s (was %s) %s",
                    self.name,
                    version,
                    previous,
                    loaded.serving,
                )
            self._checked_at = now
        except Exception as exc:  # the registry is down or the alias is gone
            if self.current is None:
                raise AnomalakeError(
                    f"cannot load {self.name}@{self.alias} from {self.tracking_uri}: {exc}",
                    "start the tracking server (`anomalake up`) and promote a model "
                    "(`anomalake models promote NAME`)",
                ) from exc
            log.warning(
                "model registry unreachable (%s); still scoring with %s version %s",
                exc,
                self.name,
                self.current.version,
            )
            self._checked_at = now
        assert self.current is not None
        return self.current

    def score(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Score raw input rows with the current champion.

        Returns ``score``, ``prediction``, ``label``, ``model_name``, ``model_version`` and
        ``confirm_windows`` per row. A two-class model: ``score`` is the positive class's
        probability, ``prediction`` is at the model's own threshold, ``label`` is None. A
        model of more classes (an episode classifier): its first class (``classes_[0]``) is
        the normal one and ``score`` the probability of any other. With a ``threshold``
        chosen at training (:class:`LoadedModel`), ``prediction`` is ``score >= threshold``
        and ``label`` the most likely other class; without, ``label`` is the most likely
        class and ``prediction`` whether that is not the first. ``confirm_windows`` is the
        version's own (None if untagged).
        """
        loaded = self.get()
        if rows.empty:
            return pd.DataFrame(
                {
                    "score": pd.Series(dtype="float64"),
                    "prediction": pd.Series(dtype="bool"),
                    "label": pd.Series(dtype="object"),
                    "model_name": pd.Series(dtype="object"),
                    "model_version": pd.Series(dtype="object"),
                    "confirm_windows": pd.Series(dtype="object"),
                }
            )
        model = loaded.model
        proba = model.predict_proba(rows)
        label: Any = None
        if proba.shape[1] > 2:
            score, likeliest = abnormal(proba, model.classes_)
            if loaded.threshold is None:
                best = proba.argmax(axis=1)
                prediction = best != 0
                label = [str(c) for c in np.asarray(model.classes_)[best]]
            else:
                prediction = score >= loaded.threshold
                label = [str(c) for c in likeliest]
        else:
            score = proba[:, 1]
            threshold = getattr(model, "threshold", None)
            prediction = score >= threshold if threshold is not None else model.predict(rows)
        return pd.DataFrame(
            {
                "score": score.astype("float64"),
                "prediction": pd.Series(prediction).astype(bool).to_numpy(),
                "label": label,
                "model_name": loaded.name,
                "model_version": loaded.version,
                "confirm_windows": loaded.confirm_windows,
            },
            index=rows.index,
        )


def abnormal(proba: np.ndarray, classes: Any) -> tuple[np.ndarray, np.ndarray]:
    """Of a classifier whose first class is normal: P(anything else), the likeliest other class."""
    return 1.0 - proba[:, 0], np.asarray(classes)[1 + proba[:, 1:].argmax(axis=1)]


_CHAMPIONS: dict[tuple[str, str, str], ChampionModel] = {}


def champion(
    tracking_uri: str, name: str, refresh_seconds: float = 30.0, alias: str = CHAMPION
) -> ChampionModel:
    """This process's :class:`ChampionModel` for ``name@alias`` (created on first use)."""
    key = (tracking_uri, name, alias)
    if key not in _CHAMPIONS:
        _CHAMPIONS[key] = ChampionModel(tracking_uri, name, refresh_seconds, alias=alias)
    return _CHAMPIONS[key]


class ChampionScorer:
    """Scores typed rows with this process's champion of ``name``: a step's model.

    Picklable (four strings and a number): the speed layer hands it to the per-entity
    step, which runs in the Spark workers; each worker loads the model the ``alias``
    names (the spec's ``scorer.model.alias``, ``champion`` by default) once
    (:func:`champion`) and re-checks the alias every ``refresh_seconds``.
    """

    def __init__(
        self, tracking_uri: str, name: str, refresh_seconds: float = 30.0, alias: str = CHAMPION
    ) -> None:
        self.tracking_uri, self.name, self.refresh_seconds = tracking_uri, name, refresh_seconds
        self.alias = alias

    def __call__(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows' scores by the model the alias names now (:meth:`ChampionModel.score`)."""
        model = champion(self.tracking_uri, self.name, self.refresh_seconds, self.alias)
        return model.score(rows)

    @classmethod
    def of_spec(
        cls, settings: Settings, spec: UseCaseSpec, stream: str | None = None
    ) -> ChampionScorer | None:
        """The scorer of the model a use case's spec declares (``scorer.model``), if any."""
        declared = spec.scorer.model
        if declared is None:
            return None
        registered = settings.name_prefix + spec.named(declared.name, stream)
        return cls(settings.mlflow.uri, registered, spec.model_refresh_seconds, declared.alias)
