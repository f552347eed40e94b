"""Ranking rules on synthetic data: fit, diversity, exclude, seed, lift order and reasons."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.contracts import Emotion, Strategy
from services.recommender.catalog import Catalog
from services.recommender.mood_model import MATCH, MoodModel, targets
from services.recommender.ranking import Ranker, artist_keys, reason
from tests.recommender import synthetic


@pytest.fixture(scope="module")
def model() -> MoodModel:
    return MoodModel().fit(synthetic.labelled())


@pytest.fixture(scope="module")
def ranker(model: MoodModel) -> Ranker:
    return Ranker(Catalog.from_frame(synthetic.catalog(n=3000, artists=400)), model, pool_size=300)


def test_artist_keys_split_credits() -> None:
    assert artist_keys("Zayn Featuring PARTYNEXTDOOR") == {"zayn", "partynextdoor"}
    assert artist_keys("Ann;Bob") == artist_keys("bob, ANN") == {"ann", "bob"}
    assert artist_keys("Sia feat. Sean Paul") & artist_keys("Sia")


def test_one_track_per_artist_even_when_few_artists(model: MoodModel) -> None:
    few = Ranker(Catalog.from_frame(synthetic.catalog(n=1500, artists=12)), model, pool_size=300)
    for strategy in Strategy:
        tracks = few.recommend(Emotion.happy, strategy, 10)
        assert len({t.artists for t in tracks}) == 10
        longer = few.recommend(Emotion.happy, strategy, 30)
        assert len(longer) == len({t.artists for t in longer}) <= 12


def test_collaborations_count_for_each_artist(model: MoodModel) -> None:
    df = synthetic.catalog(n=600, artists=300)
    df.loc[:, "artists"] = [f"Solo {i}; Guest" if i % 2 else f"Solo {i}" for i in range(len(df))]
    tracks = Ranker(Catalog.from_frame(df), model, pool_size=300).recommend(Emotion.sad, Strategy.match, 20)
    assert sum("Guest" in t.artists for t in tracks) <= 1


def test_list_fits_the_target(ranker: Ranker) -> None:
    for emotion in (Emotion.happy, Emotion.sad, Emotion.angry, Emotion.neutral):
        tracks = ranker.recommend(emotion, Strategy.match, 10)
        target = MATCH[emotion]
        valence = np.mean([t.features["valence"] for t in tracks])
        energy = np.mean([t.features["energy"] for t in tracks])
        assert abs(valence - target.valence) < 0.2 and abs(energy - target.arousal) < 0.2, emotion


def test_lift_moves_from_the_mood_toward_the_goal(ranker: Ranker) -> None:
    tracks = ranker.recommend(Emotion.sad, Strategy.lift, 12)
    valence = [t.features["valence"] for t in tracks]
    assert np.mean(valence[:3]) < 0.35 < 0.6 < np.mean(valence[-3:])
    assert len(targets(Emotion.sad, Strategy.lift)) > 1 and len(targets(Emotion.sad, Strategy.match)) == 1


def test_exclude_removes_played_tracks(ranker: Ranker) -> None:
    first = ranker.recommend(Emotion.fear, Strategy.match, 10)
    played = frozenset(t.id for t in first)
    second = ranker.recommend(Emotion.fear, Strategy.match, 10, exclude=played)
    assert len(second) == 10 and not played & {t.id for t in second}
    unknown = frozenset({"A" * 22})
    assert ranker.recommend(Emotion.fear, Strategy.match, 10, exclude=unknown) == first


def test_seed_is_reproducible_and_varies(ranker: Ranker) -> None:
    def ids(seed: int | None) -> list[str]:
        return [t.id for t in ranker.recommend(Emotion.surprise, Strategy.lift, 10, seed=seed)]

    assert ids(None) == ids(None)
    assert ids(3) == ids(3)
    lists = [ids(s) for s in range(5)]
    assert len({tuple(x) for x in lists}) == 5
    # Variety, not randomness: seeded lists still share the best fits.
    assert set(lists[0]) & set(ids(None))


def test_reason_describes_features() -> None:
    text = reason(
        {
            "valence": 0.82,
            "energy": 0.77,
            "danceability": 0.5,
            "acousticness": 0.1,
            "instrumentalness": 0.0,
            "tempo": 124.2,
        },
        "happy",
        0.9,
    )
    assert text == "happy mood (90%), bright (valence 0.82), energetic (energy 0.77), 124 BPM"
    calm = reason(
        {
            "valence": 0.5,
            "energy": 0.2,
            "danceability": 0.3,
            "acousticness": 0.9,
            "instrumentalness": 0.8,
            "tempo": 70,
        },
        "calm",
        0.6,
    )
    assert "gentle (energy 0.20)" in calm and "acoustic" in calm and "instrumental" in calm


def test_skips_unservable_rows() -> None:
    df = synthetic.catalog(n=20)
    df.loc[0, "name"] = None
    df.loc[1, "artists"] = "  "
    df.loc[2, "track_id"] = "too-short"
    df.loc[3, "valence"] = np.nan
    df.loc[5, "track_id"] = df.loc[4, "track_id"]
    catalog = Catalog.from_frame(df)
    assert len(catalog) == 15 and catalog.skipped == 5
    assert all(len(i) == 22 for i in catalog.ids)


def test_exclusions_beyond_the_shortlist_still_fill_the_list(ranker: Ranker) -> None:
    # The 150 best fits played: more than the greedy pick's first shortlist (4 * limit + 40) holds.
    pool = ranker.pools[(Emotion.happy, Strategy.match)]
    played = frozenset(ranker.catalog.ids[r] for r in pool.index[np.argsort(-pool.scores[0])[:150]])
    tracks = ranker.recommend(Emotion.happy, Strategy.match, 10, exclude=played)
    assert len(tracks) == 10 and not played & {t.id for t in tracks}


def test_seeded_lists_stay_near_the_target(ranker: Ranker) -> None:
    """A seed varies the list, but its tracks fit about as well as the unseeded list's."""

    def mean_fit(seed: int | None) -> float:
        return float(np.mean([s for _, s in ranker.rank(Emotion.sad, Strategy.match, 10, seed=seed)]))

    best = mean_fit(None)
    seeded = [mean_fit(seed) for seed in range(10)]
    assert min(seeded) > best - 0.1 and np.mean(seeded) > best - 0.05
