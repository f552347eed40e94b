"""The repository and data locations: one source, MOODTUNES_DATA honoured wherever data is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common import paths
from services.recommender.settings import RecommenderSettings
from training.settings import TrainingSettings


def test_repo_is_the_checkout() -> None:
    assert (paths.REPO / "services" / "common" / "paths.py").is_file()


def test_data_dir_defaults_beside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    assert paths.data_dir() == (paths.REPO.parent / "shared" / "data").resolve()


def test_recommender_and_training_read_moodtunes_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "catalog.parquet").write_bytes(b"")
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    settings = RecommenderSettings()
    assert settings.catalog_path == tmp_path / "music" / "catalog.parquet"
    assert settings.labelled_path is None  # absent there: the service starts, not ready, and says why
    assert TrainingSettings().data == tmp_path


def test_explicit_recommender_paths_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    monkeypatch.setenv("RECOMMENDER_CATALOG_PATH", "/elsewhere/c.parquet")
    assert RecommenderSettings().catalog_path == Path("/elsewhere/c.parquet")
