"""The service on the real 70k catalog and labelled tracks (MOODTUNES_DATA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from services.common.contracts import EMOTIONS
from services.recommender.app import create_app
from services.recommender.settings import RecommenderSettings

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def real_client(data_dir: Path) -> TestClient:
    # MOODTUNES_DATA alone leads the service to the catalog and the labelled tracks.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOODTUNES_DATA", str(data_dir))
        settings = RecommenderSettings()
    assert settings.catalog_path == data_dir / "music" / "catalog.parquet"
    with TestClient(create_app(settings)) as client:
        yield client


def test_every_emotion_on_the_real_catalog(real_client: TestClient) -> None:
    assert real_client.get("/readyz").status_code == 200
    valence = {}
    for emotion in EMOTIONS:
        tracks = real_client.get(f"/recommend?emotion={emotion}").json()["tracks"]
        assert len(tracks) == 10 and all(len(t["id"]) == 22 and t["name"] and t["artists"] for t in tracks)
        valence[emotion] = np.mean([t["features"]["valence"] for t in tracks])
    assert valence["happy"] > valence["neutral"] > valence["sad"]
    assert valence["happy"] - valence["sad"] > 0.4


def test_sad_lift_brightens_on_the_real_catalog(real_client: TestClient) -> None:
    tracks = real_client.get("/recommend?emotion=sad&strategy=lift&limit=12").json()["tracks"]
    valence = [t["features"]["valence"] for t in tracks]
    assert np.mean(valence[:3]) + 0.3 < np.mean(valence[-3:])
