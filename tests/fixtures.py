"""Small inputs for tests that run the real services on a fresh clone (no ../shared): the music data the
recommender reads (built by tests/recommender/synthetic.py) and scikit-image's public-domain astronaut
photo as a JPEG."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import redis
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


# The gateway and browser tests share one Redis database; each run keeps to its own key prefix.
REDIS_TEST_URL = "redis://127.0.0.1:6379/13"


@contextlib.contextmanager
def redis_key_prefix(name: str) -> Iterator[str]:
    """A key prefix no other test run uses; only its keys are deleted afterwards."""
    prefix = f"test-{name}-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_TEST_URL)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()
