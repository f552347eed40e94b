"""The service on the real catalogs (MOODTUNES_DATA): the shipped 70k one and a fresh installation's (the
two public source files through the importer), held to issue 14's done-when figures and to what
reports/music/recommendations.json (python -m training.music.evaluate --part recommendations) says, less
the margins docs/results.md ("Margins") states."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from services.common.contracts import EMOTIONS, Emotion
from services.common.paths import REPO
from services.recommender.app import create_app
from services.recommender.importer import import_files, write
from services.recommender.mood_model import REGIONS, KnnConfig, load_labelled
from services.recommender.ranking import RankWeights, artist_keys
from services.recommender.settings import MODEL_CONFIG, RecommenderSettings
from training.music.recommendations import SPLITS, labelled_report

pytestmark = pytest.mark.data

CALMER = ("angry", "disgust", "fear")
REPORT = REPO / "reports" / "music" / "recommendations.json"
SETTING = {"shipped": "full", "fresh": "fresh"}  # the report's names for the two catalogs
SEEDS = 20  # seeded lists per emotion, as in the report
# docs/results.md, "Margins": the lists are deterministic, so every track of a match list is inside its
# region (none may leave it); valence and energy figures and precision@10 may move by 0.01 (float
# arithmetic of another CPU can reorder near-ties).
MARGIN = 0.01


def reported(setting: str) -> dict[str, Any]:
    return json.loads(REPORT.read_text())["settings"][SETTING[setting]]


def test_moodtunes_data_alone_leads_to_the_catalog(data_dir: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOODTUNES_DATA", str(data_dir))
        settings = RecommenderSettings()
    assert settings.catalog_path == data_dir / "music" / "catalog.parquet"
    assert settings.labelled_path == data_dir / "music" / "mood_labelled.parquet"


def serve(catalog: Path, labelled: Path) -> Iterator[TestClient]:
    settings = RecommenderSettings(catalog_path=catalog, labelled_path=labelled)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        yield client


@pytest.fixture(scope="module")
def fresh_paths(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    sources, out = data_dir / "music" / "sources", tmp_path_factory.mktemp("fresh")
    write(import_files([sources / "spotify_songs.csv"]), out / "catalog.parquet")
    write(import_files([sources / "data_moods.csv"]), out / "labelled.parquet")
    return out / "catalog.parquet", out / "labelled.parquet"


@pytest.fixture(scope="module", params=["shipped", "fresh"])
def real_client(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[tuple[str, TestClient]]:
    if request.param == "shipped":
        paths = data_dir / "music" / "catalog.parquet", data_dir / "music" / "mood_labelled.parquet"
    else:
        paths = request.getfixturevalue("fresh_paths")
    for client in serve(*paths):
        yield request.param, client


def points(
    client: TestClient, emotion: str, strategy: str, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    params: dict[str, Any] = {"emotion": emotion, "strategy": strategy}
    if seed is not None:
        params["seed"] = seed
    tracks = client.get("/recommend", params=params).json()["tracks"]
    assert len(tracks) == 10
    v = np.array([t["features"]["valence"] for t in tracks])
    e = np.array([t["features"]["energy"] for t in tracks])
    return v, e, [t["artists"] for t in tracks]


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_match_lists_sit_in_their_region(real_client: tuple[str, TestClient], emotion: str) -> None:
    """docs/results.md: every unseeded match list has all 10 tracks inside the region and 10 distinct
    artists, and so does every seeded one (20 seeds)."""
    _, client = real_client
    region = REGIONS[Emotion(emotion)]
    v, e, artists = points(client, emotion, "match")
    assert (region.distance(v, e) == 0).all(), (emotion, v, e)
    keys = [k for a in artists for k in artist_keys(a)]
    assert len(keys) == len(set(keys)) and len(artists) == 10
    for seed in range(SEEDS):
        v, e, _ = points(client, emotion, "match", seed)
        assert (region.distance(v, e) == 0).all(), (emotion, seed, v, e)


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_lift_lists_end_brighter_and_calmer(real_client: tuple[str, TestClient], emotion: str) -> None:
    """The report's lift figures: the first 3 tracks in the region, the last 3 at least as bright, and
    for angry, disgust and fear as calm, as the report says, less the margin."""
    setting, client = real_client
    figures = reported(setting)["catalog"]["lists"][f"{emotion}/lift"]
    v, e, _ = points(client, emotion, "lift")
    assert (REGIONS[Emotion(emotion)].distance(v[:3], e[:3]) == 0).all(), (v, e)
    assert v[-3:].min() >= figures["last3_min_valence"] - MARGIN, (v, figures["last3_min_valence"])
    if emotion in CALMER:
        assert e[-3:].mean() <= figures["last3_energy"] + MARGIN, (e, figures["last3_energy"])
        assert e[-3:].mean() < e[:3].mean() - 0.15, e


def test_reasons_say_why(real_client: tuple[str, TestClient]) -> None:
    tracks = real_client[1].get("/recommend?emotion=angry").json()["tracks"]
    assert all("dark (valence 0." in t["reason"] and "(energy " in t["reason"] for t in tracks)


@pytest.fixture(scope="module")
def held_out(data_dir: Path, request: pytest.FixtureRequest) -> dict[str, dict]:
    """The committed evaluation's test-split figures with the shipped weights, for both labelled sets."""
    ranking = {"pool_size": 1000, "seed_noise": 0.3}
    sets = {
        "shipped": data_dir / "music" / "mood_labelled.parquet",
        "fresh": request.getfixturevalue("fresh_paths")[1],
    }
    config = KnnConfig.load(MODEL_CONFIG)
    weights = RankWeights.load()
    return {
        name: labelled_report(load_labelled(p), config, SPLITS, ranking, weights) for name, p in sets.items()
    }


def test_emotions_with_labelled_tracks(held_out: dict[str, dict]) -> None:
    assert held_out["shipped"]["counted"] == ["angry", "happy", "sad", "neutral"]
    assert held_out["fresh"]["counted"] == ["happy", "sad"]  # data_moods: no angry, no neutral


@pytest.mark.parametrize(
    ("setting", "emotion"),
    [
        *[("shipped", e) for e in ("angry", "happy", "sad", "neutral")],
        ("fresh", "sad"),
        pytest.param(
            "fresh",
            "happy",
            marks=pytest.mark.xfail(
                strict=True,
                reason="76% with data_moods alone, best possible 88% (reports/music/recommendations.md)",
            ),
        ),
    ],
)
def test_precision_at_10_of_the_target_moods_on_held_out_tracks(
    held_out: dict[str, dict], setting: str, emotion: str
) -> None:
    assert round(held_out[setting]["test_precision_target"][emotion], 6) >= 0.8


@pytest.mark.parametrize("setting", ["shipped", "fresh"])
def test_precision_at_10_as_the_report_says(held_out: dict[str, dict], setting: str) -> None:
    """Every counted emotion's precision@10 on the held-out splits, as the report has it, less the margin."""
    report = reported(setting)["labelled"]["test_precision_target"]
    got = held_out[setting]["test_precision_target"]
    assert set(got) == set(report)
    for emotion, figure in report.items():
        assert got[emotion] >= figure - MARGIN, (emotion, got[emotion], figure)


def test_no_list_beats_the_best_possible(held_out: dict[str, dict]) -> None:
    """The report's "best possible" column is an upper bound of what the ranker scored, every emotion."""
    for report in held_out.values():
        for emotion, ceiling in report["test_precision_ceiling"].items():
            assert report["test_precision_target"][emotion] <= ceiling + 1e-9, emotion
