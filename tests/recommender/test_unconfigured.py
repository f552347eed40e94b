"""Without a catalog the service still starts (a real process), is not ready and says what to set."""

from __future__ import annotations

from pathlib import Path

import httpx

from services.launch import service


def test_missing_catalog_gives_503_naming_the_setting(tmp_path: Path) -> None:
    env = {"RECOMMENDER_CATALOG_PATH": str(tmp_path / "nowhere.parquet")}
    with service("recommender", env=env, probe="/healthz") as url:
        assert httpx.get(f"{url}/readyz").status_code == 503
        r = httpx.get(f"{url}/recommend?emotion=happy")
        assert r.status_code == 503
        assert "RECOMMENDER_CATALOG_PATH" in r.json()["detail"]
        assert httpx.get(f"{url}/healthz").status_code == 200  # still serving after the 503


def test_real_process_serves_synthetic_catalog(synthetic_paths: tuple[Path, Path]) -> None:
    catalog, labelled = synthetic_paths
    env = {"RECOMMENDER_CATALOG_PATH": str(catalog), "RECOMMENDER_LABELLED_PATH": str(labelled)}
    with service("recommender", env=env) as url:
        r = httpx.get(f"{url}/recommend", params={"emotion": "neutral", "strategy": "lift", "limit": 5})
        assert r.status_code == 200 and len(r.json()["tracks"]) == 5
        assert httpx.get(f"{url}/recommend?emotion=happy&limit=51").status_code == 422
