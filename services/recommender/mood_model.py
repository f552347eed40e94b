"""The music mood model (a KNN over transformed audio features) and where each facial emotion points in it.

Facial emotions map to a target: a mix of the model's mood classes plus a point on Russell's circumplex
(valence, arousal), where Spotify's `valence` is valence and `energy` stands in for arousal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.base import TransformerMixin
from sklearn.neighbors import KNeighborsClassifier, NeighborhoodComponentsAnalysis
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PowerTransformer, QuantileTransformer, StandardScaler

from services.common.contracts import Emotion, Strategy
from services.recommender.catalog import FEATURES, read_table

MOODS: tuple[str, ...] = ("angry", "calm", "energetic", "happy", "sad")
# The data README merges the capstone's neutral into data_moods' calm.
LABEL_MERGE: dict[str, str] = {"neutral": "calm"}


# quantile: each feature mapped to a standard normal; percentile: to its rank in 0..1 (uniform), so a
# Manhattan distance counts the share of labelled tracks lying between two values, tails not stretched.
TransformName = Literal["standard", "power", "quantile", "percentile"]


class KnnConfig(BaseModel):
    """Hyper-parameters of the mood KNN; `python -m training.music.fit` picks them by cross-validation."""

    features: list[str] = Field(default_factory=lambda: list(FEATURES))
    transform: TransformName = "quantile"
    nca: bool = False
    k: int = Field(default=25, ge=1)
    p: Literal[1, 2] = 2  # Minkowski power: 1 Manhattan, 2 Euclidean
    weights: Literal["uniform", "distance"] = "distance"

    @classmethod
    def load(cls, path: Path) -> KnnConfig:
        return cls.model_validate(json.loads(path.read_text())) if path.exists() else cls()


def make_transform(name: TransformName, random_state: int = 0) -> TransformerMixin:
    """A fresh, unfitted feature transform by name (also the search space of training.music.fit)."""
    if name == "standard":
        return StandardScaler()
    if name == "power":
        return PowerTransformer()
    return QuantileTransformer(
        n_quantiles=200,
        random_state=random_state,
        output_distribution="normal" if name == "quantile" else "uniform",
    )


def transform_name(transform: object) -> TransformName:
    """Inverse of make_transform, for a transform found by a grid search."""
    if isinstance(transform, QuantileTransformer):
        return "quantile" if transform.output_distribution == "normal" else "percentile"
    return "power" if isinstance(transform, PowerTransformer) else "standard"


def build_pipeline(config: KnnConfig, random_state: int = 0) -> Pipeline:
    steps: list[tuple[str, object]] = [("transform", make_transform(config.transform, random_state))]
    if config.nca:
        steps.append(("nca", NeighborhoodComponentsAnalysis(random_state=random_state, max_iter=100)))
    # Brute force beats trees for a few thousand training points in a handful of dimensions.
    steps.append(
        (
            "knn",
            KNeighborsClassifier(n_neighbors=config.k, weights=config.weights, p=config.p, algorithm="brute"),
        )
    )
    return Pipeline(steps)


def merged_labels(labels: pd.Series) -> np.ndarray:
    return labels.astype(str).replace(LABEL_MERGE).to_numpy(dtype=object).astype(str)


@dataclass(frozen=True)
class Target:
    """Where an emotion points: weights over mood classes and a (valence, arousal) point in 0..1."""

    mood: dict[str, float]
    valence: float
    arousal: float

    def blend(self, other: Target, alpha: float) -> Target:
        moods = set(self.mood) | set(other.mood)
        return Target(
            mood={m: (1 - alpha) * self.mood.get(m, 0.0) + alpha * other.mood.get(m, 0.0) for m in moods},
            valence=(1 - alpha) * self.valence + alpha * other.valence,
            arousal=(1 - alpha) * self.arousal + alpha * other.arousal,
        )


_ANGRY = Target({"angry": 0.8, "energetic": 0.2}, valence=0.25, arousal=0.85)
# `match` mirrors the felt emotion. Fear and surprise have no labelled tracks: they are placed by their
# circumplex position (fear: negative, aroused; surprise: positive-leaning, very aroused).
MATCH: dict[Emotion, Target] = {
    Emotion.angry: _ANGRY,
    Emotion.disgust: _ANGRY,
    Emotion.fear: Target({"sad": 0.5, "angry": 0.3, "calm": 0.2}, valence=0.2, arousal=0.7),
    Emotion.happy: Target({"happy": 0.75, "energetic": 0.25}, valence=0.85, arousal=0.65),
    Emotion.sad: Target({"sad": 1.0}, valence=0.15, arousal=0.25),
    Emotion.surprise: Target({"energetic": 0.5, "happy": 0.5}, valence=0.65, arousal=0.85),
    Emotion.neutral: Target({"calm": 1.0}, valence=0.5, arousal=0.4),
}
_SOOTHE = Target({"calm": 0.5, "happy": 0.5}, valence=0.65, arousal=0.45)
# `lift` ends here (iso principle: meet the mood first, then move): anger and fear are soothed,
# sadness and neutrality brightened, happiness and surprise kept up.
LIFT_GOAL: dict[Emotion, Target] = {
    Emotion.angry: _SOOTHE,
    Emotion.disgust: _SOOTHE,
    Emotion.fear: Target({"calm": 0.7, "happy": 0.3}, valence=0.6, arousal=0.35),
    Emotion.happy: Target({"happy": 0.5, "energetic": 0.5}, valence=0.85, arousal=0.8),
    Emotion.sad: Target({"happy": 0.7, "calm": 0.3}, valence=0.75, arousal=0.55),
    Emotion.surprise: Target({"happy": 0.8, "energetic": 0.2}, valence=0.8, arousal=0.65),
    Emotion.neutral: Target({"happy": 0.7, "energetic": 0.3}, valence=0.8, arousal=0.65),
}
LIFT_STAGES = 4


def targets(emotion: Emotion, strategy: Strategy) -> list[Target]:
    """The waypoints a list walks through: one for `match`, near-mood to goal for `lift`."""
    start = MATCH[emotion]
    if strategy is Strategy.match:
        return [start]
    return [start.blend(LIFT_GOAL[emotion], i / (LIFT_STAGES - 1)) for i in range(LIFT_STAGES)]


class MoodModel:
    """KNN mood classifier fitted on labelled tracks, with the embedding it measures distance in."""

    def __init__(self, config: KnnConfig | None = None) -> None:
        self.config = config or KnnConfig()
        self.pipeline = build_pipeline(self.config)
        self.classes: list[str] = []
        self._centroids: np.ndarray = np.empty((0, 0))

    def fit(self, labelled: pd.DataFrame) -> MoodModel:
        x = labelled[self.config.features].to_numpy(dtype=np.float64)
        y = merged_labels(labelled["label"])
        k = min(self.config.k, len(x) - 1)
        self.pipeline.set_params(knn__n_neighbors=k)
        self.pipeline.fit(x, y)
        self.classes = [str(c) for c in self.pipeline.classes_]
        # Class centroids in raw units place a target's mood mix in feature space.
        self._centroids = np.stack([x[y == c].mean(axis=0) for c in self.classes])
        return self

    def _columns(self, features: np.ndarray) -> np.ndarray:
        """Selects the configured features from a FEATURES-ordered matrix."""
        return features[:, [FEATURES.index(f) for f in self.config.features]]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.pipeline.predict_proba(self._columns(features))

    def embed(self, features: np.ndarray) -> np.ndarray:
        return self.pipeline[:-1].transform(self._columns(features))

    def mood_weights(self, target: Target) -> np.ndarray:
        """Target mood mix over this model's classes (moods it lacks are dropped, the rest renormalised)."""
        w = np.array([target.mood.get(c, 0.0) for c in self.classes])
        return w / w.sum() if w.sum() > 0 else np.full(len(self.classes), 1 / len(self.classes))

    def target_point(self, target: Target) -> np.ndarray:
        """The target in raw units (FEATURES order): the mood mix's centroid moved to the circumplex point."""
        point = dict(zip(self.config.features, self.mood_weights(target) @ self._centroids, strict=True))
        point["valence"], point["energy"] = target.valence, target.arousal
        return np.array([[point.get(f, 0.0) for f in FEATURES]])


def load_labelled(path: Path) -> pd.DataFrame:
    df = read_table(path)
    missing = [c for c in ("label", *FEATURES) if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: labelled tracks lack column(s) {', '.join(missing)}")
    return df.dropna(subset=["label", *FEATURES]).reset_index(drop=True)
