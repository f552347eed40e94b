"""Where training reads data and writes runs. Environment variables override: TRAINING_RUNS, ..., and the
datasets' MOODTUNES_DATA, which every part of moodtunes reads (services/common/paths.py)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.logs import LogSettings
from services.common.paths import REPO, data_dir


class TrainingSettings(LogSettings):
    """Training's folders, and its logging as the services log theirs."""

    # populate_by_name: `data` in code, MOODTUNES_DATA in the environment.
    model_config = SettingsConfigDict(env_prefix="TRAINING_", populate_by_name=True)

    # The datasets (FER2013 at fer2013/fer2013.npz): ../shared/data unless MOODTUNES_DATA says otherwise.
    data: Path = Field(default_factory=data_dir, validation_alias=AliasChoices("MOODTUNES_DATA"))
    runs: Path = REPO / "runs"  # checkpoints, exports and reports of each run, runs/<config>/
    # Where a promoted model goes: the emotion service's model folder.
    model_dir: Path = REPO / "services" / "emotion" / "model"
    reports: Path = REPO / "reports"  # where a promoted model's reports go


settings = TrainingSettings()
