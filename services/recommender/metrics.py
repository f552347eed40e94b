"""The recommender's Prometheus metrics (served on the metrics port, services/launch.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECOMMENDATIONS = Counter("recommender_recommendations_total", "Lists served", ["emotion", "strategy"])
CATALOG_TRACKS = Gauge("recommender_catalog_tracks", "Servable tracks in the loaded catalog")
STARTUP_SECONDS = Gauge("recommender_startup_seconds", "Catalog load + model fit + pool scoring time")
