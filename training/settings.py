"""Where training reads data and writes runs. Environment variables override (MOODTUNES_DATA, ...)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.paths import REPO, data_dir


class TrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOODTUNES_")

    data: Path = Field(default_factory=data_dir)  # MOODTUNES_DATA
    runs: Path = REPO / "runs"
    model_dir: Path = REPO / "services" / "emotion" / "model"
    reports: Path = REPO / "reports"


settings = TrainingSettings()
