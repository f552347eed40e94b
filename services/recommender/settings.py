"""Recommender settings; every field can be set from the environment with the RECOMMENDER_ prefix, the
first-run download's with RECOMMENDER_FIRST_RUN_ (its cache is the one MOODTUNES_CACHE_DIR names for every
service)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.logs import LogSettings
from services.common.paths import cache_dir as default_cache_dir
from services.common.paths import data_dir

MODEL_CONFIG = Path(__file__).resolve().parent / "model" / "mood_knn.json"


def _music_file(name: str) -> Path | None:
    """The file in the data folder's music/ (MOODTUNES_DATA), or None when it is not there."""
    path = data_dir() / "music" / name
    return path if path.exists() else None


class FirstRunSettings(BaseSettings):
    """Where a catalog comes from when none is configured or found: the two public files, downloaded once
    into the cache and built there. The expected sizes, digests and row counts are those of
    ../shared/data/music/sources/README.md (the upstream files, byte for byte)."""

    # populate_by_name: `cache_dir` in code, MOODTUNES_CACHE_DIR in the environment.
    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_FIRST_RUN_", populate_by_name=True)

    # Where the downloads and the catalog built from them are kept: the services' shared cache folder
    # (services/common/paths.py).
    cache_dir: Path = Field(
        default_factory=default_cache_dir, validation_alias=AliasChoices("MOODTUNES_CACHE_DIR")
    )
    # After a network failure the first run tries again after this long, doubling up to 10 minutes, so a
    # service started while the network was down gets its music without a restart; 0: never.
    retry_s: float = Field(default=30.0, ge=0)
    # An http(s) address, or the path of a local copy (checked the same way, not copied).
    catalog_url: str = (
        "https://raw.githubusercontent.com/rfordatascience/tidytuesday/master/data/2020/2020-01-21/"
        "spotify_songs.csv"
    )
    # What the download must be (size, digest, rows) before it is used.
    catalog_bytes: int = 7_971_379
    catalog_sha256: str = "9902920cfe4940f0914ebb6716801a42f7f19ac88fbd6693eaae7e2822b16845"  # its digest
    catalog_rows: int = 32_833  # its tracks
    # The mood-labelled tracks: an http(s) address, or the path of a local copy.
    moods_url: str = (
        "https://raw.githubusercontent.com/cristobalvch/Spotify-Machine-Learning/master/data/data_moods.csv"
    )
    # What the download must be (size, digest, rows) before it is used.
    moods_bytes: int = 118_089
    moods_sha256: str = "84a74565cfb41385aef2896a8ed6b0b41ec7ff83e7332749db136a1de3133117"  # its digest
    moods_rows: int = 686  # its tracks


class RecommenderSettings(LogSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_")

    # Default: catalog.parquet and mood_labelled.parquet under $MOODTUNES_DATA/music, when they exist;
    # unset (or set empty) and not there: the first-run cache (FirstRunSettings).
    catalog_path: Path | None = Field(default_factory=lambda: _music_file("catalog.parquet"))
    # The mood-labelled tracks the model is fitted on, found and defaulted as the catalog is.
    labelled_path: Path | None = Field(default_factory=lambda: _music_file("mood_labelled.parquet"))
    first_run: FirstRunSettings = Field(default_factory=FirstRunSettings)
    # Hyper-parameters chosen by `python -m training.music.fit`; defaults apply when the file is absent.
    knn_config_path: Path = MODEL_CONFIG
    # Candidates scored at start-up per waypoint, and a seed's noise in units of the score spread over the
    # catalog. Larger pools and noise on the catalog's spread let seeded lists reach far more of the
    # catalog for a small cost in seeded precision@10 (reports/music/report.md).
    pool_size: int = 1000
    # None: the value chosen on validation with the ranker's weights (model/ranking.json).
    diversity: float | None = None
    seed_noise: float = 0.3  # a seed's noise, in units of the catalog's score spread (see pool_size)

    @field_validator("catalog_path", "labelled_path", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value
