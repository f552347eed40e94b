"""Small inputs for tests that run the real services on a fresh clone (no ../shared): the music data the
recommender reads (built by tests/recommender/synthetic.py) and scikit-image's public-domain astronaut
photo as a JPEG."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from skimage import data as skdata

from tests.recommender import synthetic


def write_music_data(folder: Path, n_catalog: int = 600) -> tuple[Path, Path]:
    """Writes a synthetic catalog and mood-labelled set into `folder`; returns (catalog, labelled)."""
    folder.mkdir(parents=True, exist_ok=True)
    return synthetic.write(folder, n=n_catalog)


def astronaut_jpeg(quality: int = 90) -> bytes:
    """A real face photo (512x512) as JPEG."""
    buf = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buf, "JPEG", quality=quality)
    return buf.getvalue()
