"""Recommender settings; every field can be set from the environment with the RECOMMENDER_ prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO = Path(__file__).resolve().parents[2]
SHARED_MUSIC = (REPO.parent / "shared" / "data" / "music").resolve()
MODEL_CONFIG = Path(__file__).resolve().parent / "model" / "mood_knn.json"


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


class RecommenderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_")

    catalog_path: Path | None = _existing(SHARED_MUSIC / "catalog.parquet")
    labelled_path: Path | None = _existing(SHARED_MUSIC / "mood_labelled.parquet")
    # Hyper-parameters chosen by `python -m training.music.fit`; defaults apply when the file is absent.
    knn_config_path: Path = MODEL_CONFIG
    # Candidates scored at start-up per waypoint, and a seed's noise in units of the score spread over the
    # catalog. Larger pools and noise on the catalog's spread let seeded lists reach far more of the
    # catalog for a small cost in seeded precision@10 (reports/music/report.md).
    pool_size: int = 1000
    diversity: float = 0.3
    seed_noise: float = 0.3
