"""The emotion service's own Prometheus metrics (request counts and latency come from observability)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from services.common.contracts import PredictResponse

FACES_PER_FRAME = Histogram(
    "emotion_faces_per_frame", "Faces found per /predict frame", buckets=(0, 1, 2, 3, 4, 6, 8, 12, 20)
)
EMOTIONS_PREDICTED = Counter("emotion_predictions_total", "Faces classified, by emotion", ["emotion"])
STAGE_SECONDS = Histogram(
    "emotion_stage_duration_seconds",
    "Time per /predict pipeline stage",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
SOLO_RUNS = Counter(
    "emotion_solo_runs_total", "Frames processed on several cores (alone in flight on an idle machine)"
)


def record(response: PredictResponse) -> None:
    FACES_PER_FRAME.observe(len(response.faces))
    for face in response.faces:
        EMOTIONS_PREDICTED.labels(face.emotion.value).inc()
    for stage, ms in response.timings_ms.items():
        STAGE_SECONDS.labels(stage).observe(ms / 1000)
