"""Recommender settings; every field can be set from the environment with the RECOMMENDER_ prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.paths import data_dir

MODEL_CONFIG = Path(__file__).resolve().parent / "model" / "mood_knn.json"


def _music_file(name: str) -> Path | None:
    """The file in the data folder's music/ (MOODTUNES_DATA), or None when it is not there."""
    path = data_dir() / "music" / name
    return path if path.exists() else None


class RecommenderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_")

    # Default: catalog.parquet and mood_labelled.parquet under $MOODTUNES_DATA/music, when they exist.
    catalog_path: Path | None = Field(default_factory=lambda: _music_file("catalog.parquet"))
    labelled_path: Path | None = Field(default_factory=lambda: _music_file("mood_labelled.parquet"))
    # Hyper-parameters chosen by `python -m training.music.fit`; defaults apply when the file is absent.
    knn_config_path: Path = MODEL_CONFIG
    # Candidates scored at start-up per waypoint, and a seed's noise in units of the score spread over the
    # catalog. Larger pools and noise on the catalog's spread let seeded lists reach far more of the
    # catalog for a small cost in seeded precision@10 (reports/music/report.md).
    pool_size: int = 1000
    diversity: float = 0.3
    seed_noise: float = 0.3
