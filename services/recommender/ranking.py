"""Ranks catalog tracks for an emotion: fit to the target, artist diversity, popularity as a tie-breaker.

Candidate pools per (emotion, strategy) are scored once at start-up; a request only masks exclusions,
optionally perturbs scores by its seed and runs a greedy maximal-marginal-relevance pick over the pool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
    spread: float  # std of every catalog track's scores: the unit of a seed's perturbation


# The greedy pick only looks at the best SHORTLIST_PER_TRACK * limit + SHORTLIST_EXTRA candidates of
# each waypoint (after a seed's perturbation): scanning a pool of thousands for every pick was most of a
# request's time, and tracks that far down never win a pick unless exclusions use up the shortlist,
# which then grows.
SHORTLIST_PER_TRACK, SHORTLIST_EXTRA = 4, 40


class Ranker:
    def __init__(
        self,
        catalog: Catalog,
        model: MoodModel,
        pool_size: int = 1000,
        diversity: float = 0.3,
        seed_noise: float = 0.3,
    ) -> None:
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
        return (
            MOOD_WEIGHT * mood
            + CLOSENESS_WEIGHT * closeness
            + CIRCUMPLEX_WEIGHT * circumplex
            + self._popularity
        )

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
        # The seed's noise is in units of the score spread over the whole catalog, not over the pool:
        # a seed may then trade a track for one up to about that much less fitting, whatever the pool size,
        # and a held-out evaluation set gets the same perturbation as the 70k catalog.
        return Pool(
            index=rows, scores=scores[:, rows], unit=unit, same_artist=same, spread=float(scores.std())
        )

    def _build_tracks(self, rows: np.ndarray) -> dict[int, dict[str, Any]]:
        """Every pooled track as a JSON-ready dict in Track's field order (score filled per request)."""
        shown = [FEATURES.index(f) for f in SHOWN_FEATURES]
        features = self.catalog.features[rows]
        rounded = np.round(features[:, shown], 4).tolist()
        proba = self._proba[rows]
        best = proba.argmax(axis=1)
        tracks = {}
        for i, row in enumerate(rows.tolist()):
            track_id, pop = self.catalog.ids[row], self.catalog.popularity[row]
            named = dict(zip(FEATURES, features[i].tolist(), strict=True))
            tracks[row] = {
                "id": track_id,
                "name": self.catalog.names[row],
                "artists": self.catalog.artists[row],
                "album": self.catalog.albums[row],
                "url": spotify_url(track_id),
                "score": 0.0,
                "reason": reason(named, self.model.classes[best[i]], float(proba[i, best[i]])),
                "popularity": None if np.isnan(pop) else float(pop),
                "features": dict(zip(SHOWN_FEATURES, rounded[i], strict=True)),
            }
        return tracks

    def rank(
        self,
        emotion: Emotion,
        strategy: Strategy,
        limit: int,
        exclude: frozenset[str] = frozenset(),
        seed: int | None = None,
    ) -> list[tuple[int, float]]:
        """Catalog rows and scores, in list order."""
        pool = self.pools[(emotion, strategy)]
        available = np.ones(len(pool.index), dtype=bool)
        if exclude:
            excluded = [self.row_of[i] for i in exclude if i in self.row_of]
            available &= ~np.isin(pool.index, excluded)
        scores = pool.scores
        if seed is not None:
            # Same seed, same perturbation: variety across seeds, reproducibility within one.
            noise = np.random.default_rng(seed).normal(0.0, self.seed_noise * pool.spread, scores.shape[1])
            scores = scores + noise
        stages = len(scores)
        stage_of = [round(i / (limit - 1) * (stages - 1)) if limit > 1 else 0 for i in range(limit)]
        size = SHORTLIST_PER_TRACK * limit + SHORTLIST_EXTRA
        while True:
            picked, complete = self._greedy(pool, scores, available.copy(), stage_of, size)
            if complete or size >= len(pool.index):
                return picked
            size *= 4  # exclusions or shared artists used the shortlist up: look further down

    def _greedy(
        self, pool: Pool, scores: np.ndarray, available: np.ndarray, stage_of: list[int], size: int
    ) -> tuple[list[tuple[int, float]], bool]:
        """Maximal marginal relevance over the shortlist; True when it filled the list."""
        ranked = np.where(available, scores, -np.inf)
        if size < ranked.shape[1]:
            short = np.unique(
                np.concatenate([np.argpartition(-ranked[s], size - 1)[:size] for s in sorted(set(stage_of))])
            )
        else:
            short = np.arange(ranked.shape[1])
        # Work on the shortlist only: relevance once, then per pick one matrix-vector product and a few
        # in-place vector ops. Column n is a sink: pool tracks off the shortlist map there when an artist
        # is knocked out, so no filtering is needed.
        n = len(short)
        relevance = np.full((len(ranked), n + 1), -np.inf)
        relevance[:, :n] = (1 - self.diversity) * ranked[:, short]
        unit_t = np.zeros((pool.unit.shape[1], n + 1))  # [d, n + 1]: a pick's similarities are one gemv
        unit_t[:, :n] = pool.unit[short].T
        to_short = np.full(len(pool.index), n, dtype=np.intp)
        to_short[short] = np.arange(n)
        penalty, value, similarity = np.zeros(n + 1), np.empty(n + 1), np.empty(n + 1)
        picked: list[tuple[int, float]] = []
        for stage in stage_of:
            np.subtract(relevance[stage], penalty, out=value)
            j = int(value.argmax())
            if value[j] == -np.inf:
                return picked, False
            position = short[j]
            picked.append((int(pool.index[position]), float(pool.scores[stage, position])))
            relevance[:, to_short[pool.same_artist[position]]] = -np.inf
            np.dot(unit_t[:, j], unit_t, out=similarity)
            similarity *= self.diversity
            np.maximum(penalty, similarity, out=penalty)
        return picked, True

    def recommend_dicts(
        self,
        emotion: Emotion,
        strategy: Strategy,
        limit: int,
        exclude: frozenset[str] = frozenset(),
        seed: int | None = None,
    ) -> list[dict[str, Any]]:
        """The list as JSON-ready dicts (the route serialises these without a pydantic round trip)."""
        return [
            {**self._tracks[row], "score": round(score, 4)}
            for row, score in self.rank(emotion, strategy, limit, exclude, seed)
        ]

    def recommend(
        self,
        emotion: Emotion,
        strategy: Strategy,
        limit: int,
        exclude: frozenset[str] = frozenset(),
        seed: int | None = None,
    ) -> list[Track]:
        tracks = self.recommend_dicts(emotion, strategy, limit, exclude, seed)
        return [Track.model_construct(**t) for t in tracks]
