"""Where the repository and the datasets are: the one place that computes either.

The datasets live outside the repository (read-only, never copied in): MOODTUNES_DATA names their
folder; without it, ../shared/data beside the repository. Read when called, not at import, so a test or a
process that sets MOODTUNES_DATA after importing still gets its value.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DATA_ENV = "MOODTUNES_DATA"
REPO = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Where services keep what they download (MOODTUNES_CACHE_DIR; default ~/.cache/moodtunes)."""
    value = os.environ.get("MOODTUNES_CACHE_DIR")
    if value:
        return Path(value)
    try:
        return Path.home() / ".cache" / "moodtunes"
    except RuntimeError:  # no HOME and a uid without a passwd entry (some container runtimes)
        return Path(tempfile.gettempdir()) / "moodtunes-cache"


def data_dir() -> Path:
    value = os.environ.get(DATA_ENV)
    return Path(value) if value else (REPO.parent / "shared" / "data").resolve()
