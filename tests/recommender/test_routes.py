"""The /recommend route on a synthetic catalog: shape, rules and every bad parameter."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.common.contracts import EMOTIONS, RecommendMap, RecommendResponse, spotify_url
from services.recommender.ranking import artist_keys
from tests.fixtures import scrape


@pytest.mark.parametrize("emotion", EMOTIONS)
@pytest.mark.parametrize("strategy", ["match", "lift"])
def test_every_emotion_and_strategy_gives_a_full_valid_list(
    client: TestClient, emotion: str, strategy: str
) -> None:
    r = client.get("/recommend", params={"emotion": emotion, "strategy": strategy})
    assert r.status_code == 200, r.text
    body = RecommendResponse.model_validate(r.json())
    assert body.emotion.value == emotion and body.strategy.value == strategy
    assert len(body.tracks) == 10
    for track in body.tracks:
        assert len(track.id) == 22 and track.url == spotify_url(track.id)
        assert track.name and track.artists and "BPM" in track.reason
    keys = [k for t in body.tracks for k in artist_keys(t.artists)]
    assert len(keys) == len(set(keys)), "an artist appears twice"


def test_limit_bounds_are_served(client: TestClient) -> None:
    assert len(client.get("/recommend?emotion=sad&limit=1").json()["tracks"]) == 1
    assert len(client.get("/recommend?emotion=sad&limit=50").json()["tracks"]) == 50


def test_happy_is_brighter_than_sad(client: TestClient) -> None:
    def mean_valence(emotion: str) -> float:
        tracks = client.get(f"/recommend?emotion={emotion}").json()["tracks"]
        return sum(t["features"]["valence"] for t in tracks) / len(tracks)

    assert mean_valence("happy") > mean_valence("sad") + 0.3


def test_exclude_and_seed(client: TestClient) -> None:
    first = [t["id"] for t in client.get("/recommend?emotion=happy").json()["tracks"]]
    again = [
        t["id"]
        for t in client.get("/recommend", params={"emotion": "happy", "exclude": ",".join(first[:5])}).json()[
            "tracks"
        ]
    ]
    assert not set(first[:5]) & set(again) and len(again) == 10
    seeded = [
        [t["id"] for t in client.get(f"/recommend?emotion=happy&seed={s}").json()["tracks"]]
        for s in (1, 1, 2)
    ]
    assert seeded[0] == seeded[1] and seeded[0] != seeded[2]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("emotion=joy", "'angry', 'disgust', 'fear', 'happy', 'sad', 'surprise' or 'neutral'"),
        ("", "emotion"),
        ("emotion=happy&limit=0", "limit"),
        ("emotion=happy&limit=51", "limit"),
        ("emotion=happy&limit=abc", "limit"),
        ("emotion=happy&limit=2.5", "limit"),
        ("emotion=happy&strategy=louder", "strategy"),
        ("emotion=happy&seed=x", "seed"),
        ("emotion=happy&exclude=not-an-id", "exclude"),
    ],
)
def test_bad_parameters_are_clear_422s(client: TestClient, query: str, needle: str) -> None:
    r = client.get(f"/recommend?{query}")
    assert r.status_code == 422
    assert needle in r.json()["detail"]


def test_ops_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    client.get("/recommend?emotion=fear")
    metrics = scrape()
    assert 'recommender_recommendations_total{emotion="fear",strategy="match"}' in metrics
    assert "recommender_catalog_tracks" in metrics


@pytest.mark.parametrize("strategy", ["match", "lift"])
def test_map_shows_the_same_list_inside_its_regions(client: TestClient, strategy: str) -> None:
    params = {"emotion": "fear", "strategy": strategy, "seed": 3}
    body = RecommendMap.model_validate(client.get("/recommend/map", params=params).json())
    listed = client.get("/recommend", params=params).json()["tracks"]
    assert [t.id for t in body.tracks] == [t["id"] for t in listed]
    assert [t.reason for t in body.tracks] == [t["reason"] for t in listed]
    assert len(body.regions) == (1 if strategy == "match" else 4)
    for track in body.tracks:
        region = body.regions[track.stage]
        assert region.valence[0] <= track.valence <= region.valence[1], track
        assert region.energy[0] <= track.energy <= region.energy[1], track
    assert len(body.density) == body.bins and sum(map(sum, body.density)) == 2000  # the synthetic catalog


def test_map_refuses_bad_parameters(client: TestClient) -> None:
    assert client.get("/recommend/map?emotion=joy").status_code == 422
    assert client.get("/recommend/map?emotion=sad&exclude=nope").status_code == 422
