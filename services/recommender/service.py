"""Start-up: loads the catalog and labelled tracks the settings name, fits the model, builds the ranker."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge
from threadpoolctl import threadpool_limits

from services.recommender.catalog import load_catalog
from services.recommender.mood_model import KnnConfig, MoodModel, load_labelled
from services.recommender.ranking import Ranker
from services.recommender.settings import RecommenderSettings

log = logging.getLogger("moodtunes.recommender")

RECOMMENDATIONS = Counter("recommender_recommendations_total", "Lists served", ["emotion", "strategy"])
CATALOG_TRACKS = Gauge("recommender_catalog_tracks", "Servable tracks in the loaded catalog")
STARTUP_SECONDS = Gauge("recommender_startup_seconds", "Catalog load + model fit + pool scoring time")


class NotConfigured(RuntimeError):
    """The service cannot recommend; the message says which setting to fix."""


@dataclass
class State:
    ranker: Ranker | None = None
    error: str = "starting"
    timings_s: dict[str, float] = field(default_factory=dict)


def build(settings: RecommenderSettings) -> tuple[Ranker, dict[str, float]]:
    if settings.catalog_path is None or not settings.catalog_path.exists():
        raise NotConfigured(
            "no catalog: set RECOMMENDER_CATALOG_PATH to a catalog .parquet/.csv "
            f"(currently {settings.catalog_path}); build one with `python -m training.music.importer`"
        )
    if settings.labelled_path is None or not settings.labelled_path.exists():
        raise NotConfigured(
            "no mood-labelled tracks: set RECOMMENDER_LABELLED_PATH to a labelled .parquet/.csv "
            f"(currently {settings.labelled_path})"
        )
    with threadpool_limits(1):  # small matrices: extra BLAS threads only contend on a busy machine
        return _build(settings)


def _build(settings: RecommenderSettings) -> tuple[Ranker, dict[str, float]]:
    start = time.perf_counter()
    catalog = load_catalog(settings.catalog_path)
    loaded = time.perf_counter()
    model = MoodModel(KnnConfig.load(settings.knn_config_path)).fit(load_labelled(settings.labelled_path))
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


def start(settings: RecommenderSettings) -> State:
    """Never raises: a missing or bad input leaves the service up but not ready, with the reason."""
    try:
        ranker, timings = build(settings)
    except (NotConfigured, ValueError, OSError) as exc:
        log.error("recommender not ready: %s", exc)
        return State(error=str(exc))
    return State(ranker=ranker, error="", timings_s=timings)
