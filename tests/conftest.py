"""Shared fixtures. Tests marked `data` use the real datasets: they run when MOODTUNES_DATA is set and
fail loudly when it points at nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.common.paths import REPO

OUTPUT = REPO / "test-output"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("MOODTUNES_DATA")
    if not value:
        pytest.skip("MOODTUNES_DATA is not set: real-data tests skipped")
    path = Path(value)
    if not (path / "fer2013").is_dir() or not (path / "music").is_dir():
        pytest.fail(f"MOODTUNES_DATA={value} does not hold fer2013/ and music/", pytrace=False)
    return path


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT
