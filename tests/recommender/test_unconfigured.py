"""Without a catalog the service still starts (a real uvicorn process), is not ready and says what to set."""

from __future__ import annotations

import httpx
import pytest

from services.recommender.app import app
from tests.procs import free_port


def test_missing_catalog_gives_503_naming_the_setting(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setenv("RECOMMENDER_CATALOG_PATH", str(tmp_path / "nowhere.parquet"))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        r = client.get("/recommend?emotion=happy")
        assert r.status_code == 503
        assert "RECOMMENDER_CATALOG_PATH" in r.json()["detail"]


def test_real_process_serves_synthetic_catalog(synthetic_paths) -> None:
    from tests.procs import service

    catalog, labelled = synthetic_paths
    env = {"RECOMMENDER_CATALOG_PATH": str(catalog), "RECOMMENDER_LABELLED_PATH": str(labelled)}
    with service("services.recommender.app:app", port=free_port(), env=env) as url:
        r = httpx.get(f"{url}/recommend", params={"emotion": "neutral", "strategy": "lift", "limit": 5})
        assert r.status_code == 200 and len(r.json()["tracks"]) == 5
        assert httpx.get(f"{url}/recommend?emotion=happy&limit=51").status_code == 422
