"""Where training reads data and writes runs. Environment variables override (MOODTUNES_DATA, ...)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    return (REPO.parent / "shared" / "data").resolve()


class TrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOODTUNES_")

    data: Path = default_data_dir()
    runs: Path = REPO / "runs"
    model_dir: Path = REPO / "services" / "emotion" / "model"
    reports: Path = REPO / "reports"


settings = TrainingSettings()
