"""The music mood model (a KNN over transformed audio features) and where each facial emotion points in it.

Facial emotions map to a target: a mix of the model's mood classes plus a point on Russell's circumplex
(valence, arousal), where Spotify's `valence` is valence and `energy` stands in for arousal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import orjson
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
        return cls.model_validate(orjson.loads(path.read_bytes())) if path.exists() else cls()


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
    """Mood labels in lower case (data_moods spells them "Happy"), neutral merged into calm."""
    return labels.astype(str).str.strip().str.lower().replace(LABEL_MERGE).to_numpy(dtype=object).astype(str)


@dataclass(frozen=True)
class Region:
    """A box on the circumplex plane (inclusive bounds on valence and on energy, which stands in for
    arousal): where every track of a list for an emotion must lie."""

    valence: tuple[float, float]
    energy: tuple[float, float]

    def distance(self, valence: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """How far each (valence, energy) point lies outside the box; 0 inside."""
        dv = np.maximum(self.valence[0] - valence, 0.0) + np.maximum(valence - self.valence[1], 0.0)
        de = np.maximum(self.energy[0] - energy, 0.0) + np.maximum(energy - self.energy[1], 0.0)
        return np.hypot(dv, de)

    def blend(self, other: Region, alpha: float) -> Region:
        def mix(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
            return ((1 - alpha) * a[0] + alpha * b[0], (1 - alpha) * a[1] + alpha * b[1])

        return Region(mix(self.valence, other.valence), mix(self.energy, other.energy))


# Per emotion, what decides among tracks inside the region besides the mood model: +1 favours high
# values of a feature (percentile rank in the catalog; mode: 1 major, 0 minor), -1 low ones; genres are
# the catalog's playlist genres that earn a bonus where a track's genre is known.
Profile = dict[str, float]


@dataclass(frozen=True)
class Target:
    """Where an emotion points: weights over mood classes, a (valence, arousal) point in 0..1, the region
    the list must stay in, and the feature profile that ranks tracks inside it."""

    mood: dict[str, float]
    valence: float
    arousal: float
    region: Region
    profile: Profile = field(default_factory=dict)
    genres: frozenset[str] = frozenset()

    def blend(self, other: Target, alpha: float) -> Target:
        moods = set(self.mood) | set(other.mood)
        features = set(self.profile) | set(other.profile)
        return Target(
            mood={m: (1 - alpha) * self.mood.get(m, 0.0) + alpha * other.mood.get(m, 0.0) for m in moods},
            valence=(1 - alpha) * self.valence + alpha * other.valence,
            arousal=(1 - alpha) * self.arousal + alpha * other.arousal,
            region=self.region.blend(other.region, alpha),
            profile={
                f: (1 - alpha) * self.profile.get(f, 0.0) + alpha * other.profile.get(f, 0.0)
                for f in features
            },
            genres=self.genres if alpha < 0.5 else other.genres,
        )


# Regions of Russell's circumplex for music (valence, energy as arousal), the bounds: anger and
# disgust negative and highly aroused, fear negative and aroused, sadness negative and calm, neutral mid
# and calm, happiness positive and lively, surprise lively.
REGIONS: dict[Emotion, Region] = {
    Emotion.angry: Region((0.0, 0.40), (0.70, 1.0)),
    Emotion.disgust: Region((0.0, 0.40), (0.70, 1.0)),
    Emotion.fear: Region((0.0, 0.40), (0.50, 1.0)),
    Emotion.happy: Region((0.65, 1.0), (0.55, 1.0)),
    Emotion.sad: Region((0.0, 0.35), (0.0, 0.45)),
    Emotion.surprise: Region((0.50, 1.0), (0.70, 1.0)),
    Emotion.neutral: Region((0.35, 0.65), (0.0, 0.60)),
}
_ANGRY_PROFILE: Profile = {"loudness": 1.0, "mode": -1.0, "tempo": 0.5, "acousticness": -1.0}
_LIVELY_GENRES = frozenset({"pop", "latin", "edm"})
# `match` mirrors the felt emotion. The capstone's angry playlists are mostly bright pop (their tracks'
# median valence is above the angry region's bound), so angry music is also data_moods' `energetic`.
# Happy is its own mood alone: inside the happy region the model's other candidate is `energetic`
# (lively, but louder and less bright), which is surprise's, not happiness's.
# Fear and surprise have no labelled tracks: their region and profile place them.
MATCH: dict[Emotion, Target] = {
    Emotion.angry: Target(
        {"angry": 0.5, "energetic": 0.5},
        valence=0.2,
        arousal=0.88,
        region=REGIONS[Emotion.angry],
        profile=_ANGRY_PROFILE,
        genres=frozenset({"rock", "edm"}),
    ),
    Emotion.disgust: Target(
        {"angry": 0.5, "energetic": 0.5},
        valence=0.15,
        arousal=0.8,
        region=REGIONS[Emotion.disgust],
        profile={**_ANGRY_PROFILE, "danceability": -1.0},
        genres=frozenset({"rock", "rap"}),
    ),
    Emotion.fear: Target(
        {"sad": 0.5, "angry": 0.3, "calm": 0.2},
        valence=0.15,
        arousal=0.62,
        region=REGIONS[Emotion.fear],
        profile={"mode": -1.0, "danceability": -1.0, "instrumentalness": 0.5, "acousticness": -0.5},
        genres=frozenset({"rock", "edm"}),
    ),
    Emotion.happy: Target(
        {"happy": 1.0},
        valence=0.85,
        arousal=0.7,
        region=REGIONS[Emotion.happy],
        profile={"mode": 1.0, "danceability": 1.0, "acousticness": -0.5},
        genres=_LIVELY_GENRES,
    ),
    Emotion.sad: Target(
        {"sad": 1.0},
        valence=0.15,
        arousal=0.25,
        region=REGIONS[Emotion.sad],
        profile={"mode": -1.0, "tempo": -1.0, "acousticness": 1.0, "loudness": -1.0},
    ),
    Emotion.surprise: Target(
        {"energetic": 0.5, "happy": 0.5},
        valence=0.68,
        arousal=0.86,
        region=REGIONS[Emotion.surprise],
        profile={"tempo": 1.0, "loudness": 1.0, "danceability": 0.5},
        genres=frozenset({"edm", "pop"}),
    ),
    Emotion.neutral: Target(
        {"calm": 1.0},
        valence=0.5,
        arousal=0.4,
        region=REGIONS[Emotion.neutral],
        profile={"loudness": -1.0, "speechiness": -1.0, "acousticness": 0.5},
    ),
}
# `lift` ends here (iso principle: meet the mood first, then move): clearly brighter for every emotion
# (valence >= 0.55), and calmer for anger, disgust and fear; happiness and surprise are kept up.
_SOOTHE = Target(
    {"calm": 0.5, "happy": 0.5},
    valence=0.68,
    arousal=0.45,
    region=Region((0.55, 1.0), (0.25, 0.60)),
    profile={"mode": 1.0, "acousticness": 0.5, "loudness": -0.5},
)
_BRIGHTEN = Target(
    {"happy": 0.7, "energetic": 0.3},
    valence=0.8,
    arousal=0.65,
    region=Region((0.65, 1.0), (0.50, 0.85)),
    profile={"mode": 1.0, "danceability": 1.0},
    genres=_LIVELY_GENRES,
)
LIFT_GOAL: dict[Emotion, Target] = {
    Emotion.angry: _SOOTHE,
    Emotion.disgust: _SOOTHE,
    Emotion.fear: Target(
        {"calm": 0.7, "happy": 0.3},
        valence=0.65,
        arousal=0.35,
        region=Region((0.55, 1.0), (0.0, 0.50)),
        profile={"mode": 1.0, "acousticness": 1.0, "loudness": -1.0},
    ),
    Emotion.happy: Target(
        {"happy": 0.5, "energetic": 0.5},
        valence=0.85,
        arousal=0.8,
        region=Region((0.70, 1.0), (0.60, 1.0)),
        profile={"mode": 1.0, "danceability": 1.0},
        genres=_LIVELY_GENRES,
    ),
    Emotion.sad: Target(
        {"happy": 0.7, "calm": 0.3},
        valence=0.75,
        arousal=0.58,
        region=Region((0.60, 1.0), (0.40, 0.80)),
        profile={"mode": 1.0, "acousticness": 0.5},
    ),
    Emotion.surprise: _BRIGHTEN,
    Emotion.neutral: _BRIGHTEN,
}
LIFT_STAGES = 4


def targets(emotion: Emotion, strategy: Strategy) -> list[Target]:
    """The waypoints a list walks through: one for `match`, near-mood to goal for `lift`."""
    start = MATCH[emotion]
    if strategy is Strategy.match:
        return [start]
    return [start.blend(LIFT_GOAL[emotion], i / (LIFT_STAGES - 1)) for i in range(LIFT_STAGES)]


def stage_of(limit: int, stages: int) -> list[int]:
    """The waypoint of each list position: a lift's first and last ~30% sit on its start and its goal
    (so its last three tracks are in the goal's region), the positions between walk the middle ones."""
    if stages == 1 or limit == 1:
        return [0] * limit
    ends = max(1, round(0.3 * limit))
    middle = limit - 2 * ends
    return [0] * ends + [1 + i * (stages - 2) // middle for i in range(middle)] + [stages - 1] * ends


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
