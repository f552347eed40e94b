"""Ranks catalog tracks for an emotion: fit to the target, artist diversity, popularity as a tie-breaker.

Candidate pools per (emotion, strategy) are scored once at start-up; a request only masks exclusions,
optionally perturbs scores by its seed and runs a greedy maximal-marginal-relevance pick over the pool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from services.common.contracts import Emotion, Strategy, Track, spotify_url
from services.recommender.catalog import FEATURES, Catalog
from services.recommender.mood_model import MoodModel, Target, targets

# Fit = KNN mood probability + closeness in the model's feature space + closeness on the circumplex
# (valence, energy); popularity only breaks ties.
MOOD_WEIGHT, CLOSENESS_WEIGHT, CIRCUMPLEX_WEIGHT = 0.45, 0.25, 0.3
POPULARITY_WEIGHT = 0.01
UNKNOWN_POPULARITY = 0.4
_ARTIST_SPLIT = re.compile(r"\s*(?:;|,|&|\bfeaturing\b|\bfeat\b\.?|\bft\b\.?)\s*", re.IGNORECASE)
SHOWN_FEATURES = ("valence", "energy", "danceability", "acousticness", "instrumentalness", "tempo")


def artist_keys(artists: str) -> frozenset[str]:
    """Every credited artist, lower-cased, so 'A; B' and 'B featuring C' share 'b'."""
    return frozenset(p.casefold() for p in _ARTIST_SPLIT.split(artists) if p.strip())


def reason(features: dict[str, float], mood: str, mood_p: float) -> str:
    parts = [f"{mood} mood ({mood_p:.0%})"]
    v, e = features["valence"], features["energy"]
    if v >= 0.65:
        parts.append(f"bright (valence {v:.2f})")
    elif v <= 0.35:
        parts.append(f"dark (valence {v:.2f})")
    if e >= 0.7:
        parts.append(f"energetic (energy {e:.2f})")
    elif e <= 0.4:
        parts.append(f"gentle (energy {e:.2f})")
    if features["danceability"] >= 0.75:
        parts.append(f"danceable ({features['danceability']:.2f})")
    if features["acousticness"] >= 0.7:
        parts.append("acoustic")
    if features["instrumentalness"] >= 0.5:
        parts.append("instrumental")
    if len(parts) == 1:
        parts.append(f"balanced (valence {v:.2f}, energy {e:.2f})")
    parts.append(f"{features['tempo']:.0f} BPM")
    return ", ".join(parts)


@dataclass(frozen=True)
class Pool:
    """Pre-scored candidates: `scores[s, j]` is candidate j's fit to waypoint s."""

    index: np.ndarray  # catalog rows
    scores: np.ndarray  # [stages, m]
    unit: np.ndarray  # [m, d] unit-length embeddings, for similarity between picks
    same_artist: list[np.ndarray]  # pool positions sharing an artist with each candidate


class Ranker:
    def __init__(self, catalog: Catalog, model: MoodModel, pool_size: int = 300,
                 diversity: float = 0.3, seed_noise: float = 0.15) -> None:
        self.catalog = catalog
        self.model = model
        self.diversity = diversity
        self.seed_noise = seed_noise
        self.row_of = {track_id: i for i, track_id in enumerate(catalog.ids)}
        self._proba = model.predict_proba(catalog.features)
        self._embedding = model.embed(catalog.features)
        pop = np.nan_to_num(catalog.popularity / 100.0, nan=UNKNOWN_POPULARITY)
        self._popularity = POPULARITY_WEIGHT * pop
        self._valence = catalog.features[:, FEATURES.index("valence")]
        self._energy = catalog.features[:, FEATURES.index("energy")]
        self.pools = {(e, s): self._pool(targets(e, s), pool_size) for e in Emotion for s in Strategy}
        rows = np.unique(np.concatenate([pool.index for pool in self.pools.values()]))
        self._tracks = self._build_tracks(rows)

    def fit(self, target: Target) -> np.ndarray:
        """Score of every catalog track for a target: mood probability, closeness, popularity."""
        mood = self._proba @ self.model.mood_weights(target)
        distance = np.linalg.norm(self._embedding - self.model.embed(self.model.target_point(target)), axis=1)
        closeness = 1.0 / (1.0 + distance / np.median(distance))
        off = np.hypot(self._valence - target.valence, self._energy - target.arousal)
        circumplex = 1.0 - off / np.sqrt(2)
        return (MOOD_WEIGHT * mood + CLOSENESS_WEIGHT * closeness + CIRCUMPLEX_WEIGHT * circumplex
                + self._popularity)

    def _pool(self, waypoints: list[Target], size: int) -> Pool:
        scores = np.stack([self.fit(t) for t in waypoints])
        size = min(size, scores.shape[1])
        rows = np.unique(np.concatenate([np.argpartition(-s, size - 1)[:size] for s in scores]))
        emb = self._embedding[rows]
        unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        by_artist: dict[str, list[int]] = {}
        keys = [artist_keys(self.catalog.artists[r]) for r in rows]
        for j, ks in enumerate(keys):
            for key in ks:
                by_artist.setdefault(key, []).append(j)
        same = [np.array(sorted({p for key in ks for p in by_artist[key]}), dtype=np.intp) for ks in keys]
        return Pool(index=rows, scores=scores[:, rows], unit=unit, same_artist=same)

    def _build_tracks(self, rows: np.ndarray) -> dict[int, Track]:
        shown = [FEATURES.index(f) for f in SHOWN_FEATURES]
        features = self.catalog.features[rows]
        rounded = np.round(features[:, shown], 4).tolist()
        proba = self._proba[rows]
        best = proba.argmax(axis=1)
        tracks = {}
        for i, row in enumerate(rows.tolist()):
            track_id, pop = self.catalog.ids[row], self.catalog.popularity[row]
            named = dict(zip(FEATURES, features[i].tolist(), strict=True))
            # Rows were validated on load; skipping pydantic validation keeps start-up short.
            tracks[row] = Track.model_construct(
                id=track_id, name=self.catalog.names[row], artists=self.catalog.artists[row],
                album=self.catalog.albums[row], url=spotify_url(track_id), score=0.0,
                reason=reason(named, self.model.classes[best[i]], float(proba[i, best[i]])),
                popularity=None if np.isnan(pop) else float(pop),
                features=dict(zip(SHOWN_FEATURES, rounded[i], strict=True)),
            )
        return tracks

    def rank(self, emotion: Emotion, strategy: Strategy, limit: int,
             exclude: frozenset[str] = frozenset(), seed: int | None = None) -> list[tuple[int, float]]:
        """Catalog rows and scores, in list order."""
        pool = self.pools[(emotion, strategy)]
        available = np.ones(len(pool.index), dtype=bool)
        if exclude:
            excluded = [self.row_of[i] for i in exclude if i in self.row_of]
            available &= ~np.isin(pool.index, excluded)
        scores = pool.scores
        if seed is not None:
            # Same seed, same perturbation: variety across seeds, reproducibility within one.
            noise = np.random.default_rng(seed).normal(0.0, self.seed_noise * scores.std(), scores.shape[1])
            scores = scores + noise
        stages = len(scores)
        max_similarity = np.zeros(len(pool.index))
        picked: list[tuple[int, float]] = []
        for position in range(limit):
            stage = round(position / (limit - 1) * (stages - 1)) if limit > 1 else 0
            value = (1 - self.diversity) * scores[stage] - self.diversity * max_similarity
            value = np.where(available, value, -np.inf)
            j = int(np.argmax(value))
            if not np.isfinite(value[j]):
                break
            picked.append((int(pool.index[j]), float(pool.scores[stage, j])))
            available[pool.same_artist[j]] = False
            max_similarity = np.maximum(max_similarity, pool.unit @ pool.unit[j])
        return picked

    def recommend(self, emotion: Emotion, strategy: Strategy, limit: int,
                  exclude: frozenset[str] = frozenset(), seed: int | None = None) -> list[Track]:
        return [self._tracks[row].model_copy(update={"score": round(score, 4)})
                for row, score in self.rank(emotion, strategy, limit, exclude, seed)]
