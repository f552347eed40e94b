"""The gateway's own Prometheus metrics (request counts and latency come from observability; served on the
metrics port, services/launch.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ANALYZE_RECOMMEND = Counter(
    "gateway_analyze_recommend_total",
    "What /analyze did about tracks: fetched, unchanged (stable emotion as before), failed, backoff "
    "(recommender failed moments ago: not asked), no_face, off",
    ["outcome"],
)
MOOD_RECOMMEND = Counter(
    "gateway_mood_recommend_total",
    "What POST /api/mood did about tracks (the outcomes of gateway_analyze_recommend_total)",
    ["outcome"],
)

MOOD_RATE_LIMITED = Counter(
    "gateway_mood_rate_limited_total", "POST /api/mood requests refused (429): the session's rate was spent"
)

CACHE_LOOKUPS = Counter(
    "gateway_recommend_cache_total",
    "Lookups in the /recommend cache; result is hit, miss or unavailable (Redis down, served uncached)",
    ["backend", "result"],
)

REDIS_UP = Gauge("gateway_redis_up", "1 when the last Redis operation succeeded, 0 when it failed")
