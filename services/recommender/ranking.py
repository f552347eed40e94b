"""Ranks catalog tracks for an emotion: inside the emotion's circumplex region first (a penalty no fit
can outweigh), then by fit to the target (mood model, closeness, circumplex point, feature profile),
artist diversity, and popularity as a tie-breaker.

Candidate pools per (emotion, strategy) are scored once at start-up; a request only masks exclusions,
optionally perturbs scores by its seed and runs a greedy maximal-marginal-relevance pick over the pool.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from services.common.contracts import Emotion, Strategy, Track, spotify_url
from services.common.params import RecommendParams
from services.recommender.catalog import FEATURES, Catalog
from services.recommender.mood_model import MoodModel, Target, stage_of, targets

WEIGHTS_PATH = Path(__file__).resolve().parent / "model" / "ranking.json"
POPULARITY_WEIGHT = 0.01
UNKNOWN_POPULARITY = 0.4
# A track outside its waypoint's region loses OUTSIDE_PENALTY plus OUTSIDE_SLOPE per unit of distance:
# more than any fit, diversity or seed can give back (fits lie in 0..1, the diversity penalty is at most
# `diversity`, a seed's noise a fraction of the fit's spread), so a list leaves its region only when the
# region has no track left, and then by as little as it can.
OUTSIDE_PENALTY, OUTSIDE_SLOPE = 2.0, 10.0
_ARTIST_SPLIT = re.compile(r"\s*(?:;|,|&|\bfeaturing\b|\bfeat\b\.?|\bft\b\.?)\s*", re.IGNORECASE)
SHOWN_FEATURES = (
    "valence",
    "energy",
    "danceability",
    "acousticness",
    "instrumentalness",
    "tempo",
    "loudness",
)
# A profile feature is named in a track's reason when the track lies in the favoured third of the catalog.
_NOTABLE = 1 / 3
_WORDS: dict[str, tuple[str, str]] = {  # feature: (word when high, word when low)
    "loudness": ("loud", "quiet"),
    "tempo": ("fast", "slow"),
    "acousticness": ("acoustic", "electric"),
    "danceability": ("danceable", "not for dancing"),
    "instrumentalness": ("instrumental", "sung"),
    "speechiness": ("spoken", "little speech"),
    "mode": ("major key", "minor key"),
}


@dataclass(frozen=True)
class RankWeights:
    """How much each part of the fit counts among tracks inside the region; chosen on a validation split
    by `python -m training.music.evaluate --save-weights` (reports/music/report.md)."""

    mood: float = 0.45  # the KNN's probability of the target's moods
    closeness: float = 0.25  # closeness to the target in the KNN's feature space
    circumplex: float = 0.3  # closeness to the target's (valence, energy) point
    profile: float = 0.1  # loudness, mode, tempo, acousticness, genre as the emotion favours them
    diversity: float = 0.3  # how much a pick's similarity to earlier picks counts against it (MMR)

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> RankWeights:
        if not path.exists():
            return cls()
        data = orjson.loads(path.read_bytes())
        return cls(**{k: float(data[k]) for k in asdict(cls()) if k in data})


def artist_keys(artists: str) -> frozenset[str]:
    """Every credited artist, lower-cased, so 'A; B' and 'B featuring C' share 'b'."""
    return frozenset(p.casefold() for p in _ARTIST_SPLIT.split(artists) if p.strip())


def circumplex_words(valence: float, energy: float) -> list[str]:
    mood = (
        "very dark" if valence < 0.2 else "dark" if valence < 0.4 else "mixed" if valence < 0.6 else "bright"
    )
    if valence >= 0.8:
        mood = "very bright"
    pace = (
        "calm" if energy < 0.3 else "gentle" if energy < 0.5 else "moderate" if energy < 0.7 else "energetic"
    )
    if energy >= 0.85:
        pace = "intense"
    return [f"{mood} (valence {valence:.2f})", f"{pace} (energy {energy:.2f})"]


def reason(
    features: dict[str, float],
    notable: list[str],
    genres: frozenset[str],
    mood: str,
    mood_p: float,
) -> str:
    """Why a track fits: where it sits on the circumplex, the profile features it stands out on
    (`notable`: names from _WORDS, suffixed '+' or '-'), a genre the target favours, the mood model's view."""
    parts = circumplex_words(features["valence"], features["energy"])
    for item in notable:
        name, high = item[:-1], item.endswith("+")
        word = _WORDS[name][0 if high else 1]
        if name == "loudness":
            word += f" ({features['loudness']:.1f} dB)"
        parts.append(word)
    parts += sorted(genres)
    parts.append(f"{mood} mood ({mood_p:.0%})")
    parts.append(f"{features['tempo']:.0f} BPM")
    return ", ".join(parts)


MAP_BINS = 20  # the circumplex map's density grid: MAP_BINS x MAP_BINS cells over valence and energy


class Pick(NamedTuple):
    row: int  # catalog row
    score: float  # fit to its waypoint (without the region penalty)
    stage: int  # waypoint index
    position: int  # in its pool


@dataclass(frozen=True)
class Why:
    """What a waypoint's reasons say of each pool candidate, worked out at start-up so that a request
    only formats text: the profile features it stands out on, its most likely target mood."""

    notable: list[list[str]]  # per candidate: profile features as "name+" (favoured high) or "name-"
    mood: list[str]  # per candidate: the likeliest of the target's moods
    mood_p: list[float]  # its probability


@dataclass(frozen=True)
class Pool:
    """Pre-scored candidates: `scores[s, j]` is candidate j's fit to waypoint s, region penalty included."""

    index: np.ndarray  # catalog rows
    scores: np.ndarray  # [stages, m]
    fit: np.ndarray  # [stages, m], without the region penalty (what a track's `score` shows)
    unit: np.ndarray  # [m, d] unit-length embeddings, for similarity between picks
    same_artist: list[np.ndarray]  # pool positions sharing an artist with each candidate
    spread: float  # std of every catalog track's fit: the unit of a seed's perturbation
    waypoints: list[Target]
    why: list[Why]  # per waypoint


# The greedy pick only looks at the best SHORTLIST_PER_TRACK * limit + SHORTLIST_EXTRA candidates of
# each waypoint (after a seed's perturbation): scanning a pool of thousands for every pick was most of a
# request's time, and tracks that far down never win a pick unless exclusions use up the shortlist,
# which then grows.
SHORTLIST_PER_TRACK, SHORTLIST_EXTRA = 4, 40
_REASON_CACHE_SIZE = 50_000
_REASON_FEATURES = [FEATURES.index(f) for f in ("valence", "energy", "loudness", "tempo")]


class Ranker:
    def __init__(
        self,
        catalog: Catalog,
        model: MoodModel,
        pool_size: int = 1000,
        diversity: float | None = None,
        seed_noise: float = 0.3,
        weights: RankWeights | None = None,
    ) -> None:
        self.catalog = catalog
        self.model = model
        self.weights = weights or RankWeights.load()
        self.diversity = self.weights.diversity if diversity is None else diversity
        self.seed_noise = seed_noise
        self.row_of = {track_id: i for i, track_id in enumerate(catalog.ids)}
        self._proba = model.predict_proba(catalog.features)
        self._embedding = model.embed(catalog.features)
        pop = np.nan_to_num(catalog.popularity / 100.0, nan=UNKNOWN_POPULARITY)
        self._popularity = POPULARITY_WEIGHT * pop
        self.valence = catalog.features[:, FEATURES.index("valence")]
        self.energy = catalog.features[:, FEATURES.index("energy")]
        self._ranks = self._percentile_ranks()
        self._genres = catalog.genres or [frozenset()] * len(catalog)
        self._genre_mask: dict[str, np.ndarray] = {}
        for row, genres in enumerate(self._genres):
            for genre in genres:
                self._genre_mask.setdefault(genre, np.zeros(len(catalog), dtype=bool))[row] = True
        self.pools = {(e, s): self._pool(targets(e, s), pool_size) for e in Emotion for s in Strategy}
        rows = np.unique(np.concatenate([pool.index for pool in self.pools.values()]))
        self._tracks = self._build_tracks(rows)
        self._reasons: dict[tuple[Emotion, Strategy, int, int], str] = {}
        self._density = (
            np.histogram2d(self.energy, self.valence, bins=MAP_BINS, range=((0.0, 1.0), (0.0, 1.0)))[0]
            .astype(int)
            .tolist()
        )

    def _percentile_ranks(self) -> dict[str, np.ndarray]:
        """Each feature as its rank in the catalog (0..1); mode as is (1 major, 0 minor, 0.5 unknown)."""
        n = max(len(self.catalog) - 1, 1)
        ranks = {
            f: np.argsort(np.argsort(self.catalog.features[:, i], kind="stable"), kind="stable") / n
            for i, f in enumerate(FEATURES)
        }
        mode = self.catalog.mode
        ranks["mode"] = np.full(len(self.catalog), 0.5) if mode is None else np.nan_to_num(mode, nan=0.5)
        return ranks

    def profile(self, target: Target) -> np.ndarray:
        """0..1: how far every track leans the way the target's profile and genres favour (0.5: no lean)."""
        total = np.zeros(len(self.catalog))
        scale = sum(abs(w) for w in target.profile.values())
        for feature, w in target.profile.items():
            total += w * (self._ranks[feature] - 0.5)
        if target.genres:
            favoured = np.zeros(len(self.catalog), dtype=bool)
            for genre in target.genres & self._genre_mask.keys():
                favoured |= self._genre_mask[genre]
            total += 0.5 * favoured
            scale += 1.0
        return 0.5 + total / max(scale, 1e-12)

    def fit(self, target: Target) -> np.ndarray:
        """Every catalog track's fit to a target (about 0..1), without the region constraint."""
        w = self.weights
        mood = self._proba @ self.model.mood_weights(target)
        distance = np.linalg.norm(self._embedding - self.model.embed(self.model.target_point(target)), axis=1)
        closeness = 1.0 / (1.0 + distance / np.median(distance))
        off = np.hypot(self.valence - target.valence, self.energy - target.arousal)
        circumplex = 1.0 - off / np.sqrt(2)
        return (
            w.mood * mood
            + w.closeness * closeness
            + w.circumplex * circumplex
            + w.profile * self.profile(target)
            + self._popularity
        )

    def outside(self, target: Target) -> np.ndarray:
        """How far every track lies outside the target's region (0 inside)."""
        return target.region.distance(self.valence, self.energy)

    def _pool(self, waypoints: list[Target], size: int) -> Pool:
        fit = np.stack([self.fit(t) for t in waypoints])
        off = np.stack([self.outside(t) for t in waypoints])
        scores = fit - np.where(off > 0, OUTSIDE_PENALTY + OUTSIDE_SLOPE * off, 0.0)
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
        # The seed's noise is in units of the fit's spread over the whole catalog, not over the pool:
        # a seed may then trade a track for one up to about that much less fitting, whatever the pool size,
        # and a held-out evaluation set gets the same perturbation as the 70k catalog.
        return Pool(
            index=rows,
            scores=scores[:, rows],
            fit=fit[:, rows],
            unit=unit,
            same_artist=same,
            spread=float(fit.std()),
            waypoints=waypoints,
            why=[self._why(t, rows) for t in waypoints],
        )

    def _why(self, target: Target, rows: np.ndarray) -> Why:
        names = np.array([f"{f}{'+' if w > 0 else '-'}" for f, w in target.profile.items()], dtype=object)
        flags = np.zeros((len(rows), len(names)), dtype=bool)
        for k, (feature, w) in enumerate(target.profile.items()):
            flags[:, k] = (self._ranks[feature][rows] - 0.5) * np.sign(w) >= 0.5 - _NOTABLE
        weights, proba = self.model.mood_weights(target), self._proba[rows]
        mood = np.argmax(proba * weights if weights.any() else proba, axis=1)
        return Why(
            notable=[names[f].tolist() for f in flags],
            mood=[self.model.classes[m] for m in mood.tolist()],
            mood_p=proba[np.arange(len(rows)), mood].tolist(),
        )

    def _build_tracks(self, rows: np.ndarray) -> dict[int, dict[str, Any]]:
        """Every pooled track as a JSON-ready dict in Track's field order (score and reason per request)."""
        shown = [FEATURES.index(f) for f in SHOWN_FEATURES]
        rounded = np.round(self.catalog.features[rows][:, shown], 4).tolist()
        tracks = {}
        for i, row in enumerate(rows.tolist()):
            track_id, pop = self.catalog.ids[row], self.catalog.popularity[row]
            tracks[row] = {
                "id": track_id,
                "name": self.catalog.names[row],
                "artists": self.catalog.artists[row],
                "album": self.catalog.albums[row],
                "url": spotify_url(track_id),
                "score": 0.0,
                "reason": "",
                "popularity": None if np.isnan(pop) else float(pop),
                "features": dict(zip(SHOWN_FEATURES, rounded[i], strict=True)),
            }
        return tracks

    def reason(self, emotion: Emotion, strategy: Strategy, pick: Pick) -> str:
        """The pick's reason for its waypoint (cached: a track's reason for a waypoint never changes)."""
        key = (emotion, strategy, pick.stage, pick.row)
        text = self._reasons.get(key)
        if text is None:
            pool = self.pools[(emotion, strategy)]
            why, j = pool.why[pick.stage], pick.position
            valence, energy, loudness, tempo = self.catalog.features[pick.row, _REASON_FEATURES].tolist()
            text = reason(
                {"valence": valence, "energy": energy, "loudness": loudness, "tempo": tempo},
                why.notable[j],
                self._genres[pick.row] & pool.waypoints[pick.stage].genres,
                why.mood[j],
                why.mood_p[j],
            )
            if len(self._reasons) >= _REASON_CACHE_SIZE:
                self._reasons.clear()
            self._reasons[key] = text
        return text

    def rank(self, params: RecommendParams) -> list[Pick]:
        """The list's picks, in list order."""
        pool = self.pools[(params.emotion, params.strategy)]
        available = np.ones(len(pool.index), dtype=bool)
        if params.exclude:
            excluded = [self.row_of[i] for i in params.exclude if i in self.row_of]
            available &= ~np.isin(pool.index, excluded)
        scores = pool.scores
        if params.seed is not None:
            # Same seed, same perturbation: variety across seeds, reproducibility within one.
            rng = np.random.default_rng(params.seed)
            scores = scores + rng.normal(0.0, self.seed_noise * pool.spread, scores.shape[1])
        stages = stage_of(params.limit, len(scores))
        size = SHORTLIST_PER_TRACK * params.limit + SHORTLIST_EXTRA
        while True:
            picked, complete = self._greedy(pool, scores, available.copy(), stages, size)
            if complete or size >= len(pool.index):
                return picked
            size *= 4  # exclusions or shared artists used the shortlist up: look further down

    def _greedy(
        self, pool: Pool, scores: np.ndarray, available: np.ndarray, stage_of: list[int], size: int
    ) -> tuple[list[Pick], bool]:
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
        picked: list[Pick] = []
        for stage in stage_of:
            np.subtract(relevance[stage], penalty, out=value)
            j = int(value.argmax())
            if value[j] == -np.inf:
                return picked, False
            position = short[j]
            picked.append(
                Pick(int(pool.index[position]), float(pool.fit[stage, position]), stage, int(position))
            )
            relevance[:, to_short[pool.same_artist[position]]] = -np.inf
            np.dot(unit_t[:, j], unit_t, out=similarity)
            similarity *= self.diversity
            np.maximum(penalty, similarity, out=penalty)
        return picked, True

    def recommend_dicts(self, params: RecommendParams) -> list[dict[str, Any]]:
        """The list as JSON-ready dicts (the route serialises these without a pydantic round trip)."""
        return [
            {
                **self._tracks[pick.row],
                "score": round(pick.score, 4),
                "reason": self.reason(params.emotion, params.strategy, pick),
            }
            for pick in self.rank(params)
        ]

    def recommend(self, params: RecommendParams) -> list[Track]:
        tracks = self.recommend_dicts(params)
        return [Track.model_construct(**t) for t in tracks]

    def circumplex_map(self, params: RecommendParams) -> dict[str, Any]:
        """Why these songs, as data a page can draw: the catalog's density on the valence-energy plane
        (`density[i][j]`: tracks with energy in bin i and valence in bin j), the region of each waypoint
        and the list's tracks at their coordinates (same list as recommend_dicts for the same parameters)."""
        emotion, strategy = params.emotion, params.strategy
        picks = self.rank(params)
        waypoints = self.pools[(emotion, strategy)].waypoints
        return {
            "emotion": emotion.value,
            "strategy": strategy.value,
            "bins": MAP_BINS,
            "density": self._density,
            "regions": [
                {
                    "valence": [round(v, 4) for v in t.region.valence],
                    "energy": [
                        round(e, 4) for e in t.region.energy
                    ],  # rounded as the tracks: inside stays inside
                }
                for t in waypoints
            ],
            "tracks": [
                {
                    "id": self.catalog.ids[p.row],
                    "name": self.catalog.names[p.row],
                    "artists": self.catalog.artists[p.row],
                    "valence": round(float(self.valence[p.row]), 4),
                    "energy": round(float(self.energy[p.row]), 4),
                    "stage": p.stage,
                    "reason": self.reason(emotion, strategy, p),
                }
                for p in picks
            ],
        }
