"""The recommender's pipeline, built at start-up: loads the catalog and labelled tracks the settings name
(or the first-run cache: download.py), fits the model (mood_model.py), builds the ranker (ranking.py) that
answers every request."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from threadpoolctl import threadpool_limits

from services.recommender.catalog import load_catalog
from services.recommender.download import DownloadError, built, first_run
from services.recommender.metrics import CATALOG_TRACKS, STARTUP_SECONDS
from services.recommender.mood_model import KnnConfig, MoodModel, load_labelled
from services.recommender.ranking import Ranker
from services.recommender.settings import RecommenderSettings

log = logging.getLogger("moodtunes.recommender")

MAX_RETRY_S = 600.0


class NotConfigured(RuntimeError):
    """The service cannot recommend; the message says which setting to fix."""


@dataclass
class Startup:
    """How far start-up got: why the service cannot answer yet ('' once it can)."""

    error: str = "starting"


def paths(settings: RecommenderSettings) -> tuple[Path, Path]:
    """The catalog and labelled files to load: those configured, else the first-run cache's."""
    catalog, labelled = built(settings.first_run.cache_dir)
    return settings.catalog_path or catalog, settings.labelled_path or labelled


def needs_download(settings: RecommenderSettings) -> bool:
    """True when a file is neither configured nor cached (a configured file that is missing is an error
    to report, not a reason to download)."""
    configured = (settings.catalog_path, settings.labelled_path)
    if any(path is not None and not path.exists() for path in configured):
        return False
    cached = built(settings.first_run.cache_dir)
    return any(path is None and not copy.exists() for path, copy in zip(configured, cached, strict=True))


def build(settings: RecommenderSettings) -> tuple[Ranker, dict[str, float]]:
    catalog_path, labelled_path = paths(settings)
    if not catalog_path.exists():
        raise NotConfigured(
            "no catalog: set RECOMMENDER_CATALOG_PATH to a catalog .parquet/.csv "
            f"(currently {catalog_path}); build one with `python -m training.music.importer`"
        )
    if not labelled_path.exists():
        raise NotConfigured(
            "no mood-labelled tracks: set RECOMMENDER_LABELLED_PATH to a labelled .parquet/.csv "
            f"(currently {labelled_path})"
        )
    with threadpool_limits(1):  # small matrices: extra BLAS threads only contend on a busy machine
        return _build(settings, catalog_path, labelled_path)


def _build(
    settings: RecommenderSettings, catalog_path: Path, labelled_path: Path
) -> tuple[Ranker, dict[str, float]]:
    start = time.perf_counter()
    catalog = load_catalog(catalog_path)
    loaded = time.perf_counter()
    model = MoodModel(KnnConfig.load(settings.knn_config_path)).fit(load_labelled(labelled_path))
    fitted = time.perf_counter()
    ranker = Ranker(catalog, model, settings.pool_size, settings.diversity, settings.seed_noise)
    done = time.perf_counter()
    timings = {
        "catalog_load_s": loaded - start,
        "model_fit_s": fitted - loaded,
        "pools_s": done - fitted,
        "total_s": done - start,
    }
    CATALOG_TRACKS.set(len(catalog))
    STARTUP_SECONDS.set(timings["total_s"])
    log.info("recommender ready: %d tracks (%d rows skipped), %s", len(catalog), catalog.skipped, timings)
    return ranker, timings


def start(settings: RecommenderSettings, startup: Startup) -> Ranker | None:
    """The ranker; never raises: a missing or bad input leaves the service up but not ready, with the
    reason in `startup`."""
    try:
        ranker, _ = build(settings)
    except (NotConfigured, ValueError, OSError) as exc:
        log.error("recommender not ready: %s", exc)
        startup.error = str(exc)
        return None
    # A large catalog leaves millions of long-lived objects (each track's id, name, artists, genre set); a
    # full garbage collection walks them all and stalls the request that triggers it
    # (reports/recommend_scale.md). Nothing built at start-up is freed later, so it leaves the collector.
    gc.freeze()
    startup.error = ""
    return ranker


async def start_after_download(settings: RecommenderSettings, startup: Startup) -> Ranker | None:
    """The first run, off the start-up path: while it downloads and builds, `startup.error` says how far
    it got (what /readyz and /recommend answer); then the ranker, or None and what went wrong, trying
    again later when the network was at fault."""
    startup.error = "no music catalog yet: the first-run download is starting"

    def report(message: str) -> None:
        startup.error = f"no music catalog yet: {message}"

    delay = settings.first_run.retry_s
    while True:
        try:
            await first_run(settings.first_run, report)
            break
        except DownloadError as exc:
            if not exc.transient or delay <= 0:
                log.error("%s", exc)
                startup.error = str(exc)
                return None
            startup.error = f"{exc} Trying again in {delay:g} s."
            log.warning("%s", startup.error)
            await asyncio.sleep(delay)
            delay = min(2 * delay, MAX_RETRY_S)
    return await asyncio.to_thread(start, settings, startup)
