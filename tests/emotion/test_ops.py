"""Health, readiness and the service's own Prometheus metrics."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.emotion import runtime
from services.emotion.app import create_app
from services.emotion.settings import EmotionSettings
from tests.fixtures import scrape


def samples() -> dict[tuple[str, tuple], float]:
    """This process's metrics, which an app under TestClient counts into."""
    out = {}
    for family in text_string_to_metric_families(scrape()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready"}


def test_not_ready_before_startup() -> None:
    app = create_app()
    # Without entering the client's context the lifespan never ran: no model, so not ready.
    bare = TestClient(app)
    assert bare.get("/readyz").status_code == 503
    assert bare.get("/healthz").status_code == 200
    r = bare.post("/predict", content=b"x", headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 503 and "not loaded" in r.json()["detail"]


def test_metrics_count_faces_and_emotions(client: TestClient, three_heads, face_jpeg: bytes) -> None:
    from samples.images import encode

    before = samples()
    one = client.post("/predict", content=face_jpeg, headers={"Content-Type": "image/jpeg"}).json()
    three = client.post("/predict", content=encode(three_heads[0]), headers={"Content-Type": "image/jpeg"})
    after = samples()

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("emotion_faces_per_frame_count") == 2
    assert delta("emotion_faces_per_frame_sum") == 4
    assert delta("emotion_faces_per_frame_bucket", le="1.0") == 1
    emotions = [f["emotion"] for f in one["faces"] + three.json()["faces"]]
    for emotion in set(emotions):
        assert delta("emotion_predictions_total", emotion=emotion) == emotions.count(emotion)
    assert delta("emotion_stage_duration_seconds_count", stage="detect") == 2
    assert delta("http_requests_total", service="emotion", method="POST", route="/predict", status="200") == 2
    assert delta("http_request_duration_seconds_count", service="emotion", route="/predict") == 2
    assert ("emotion_solo_runs_total", ()) in after


@pytest.mark.parametrize(("free", "solo_runs"), [(64, 2), (1, 0)])
def test_solo_runs_count_frames_run_alone_on_free_cores(
    face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch, free: int, solo_runs: int
) -> None:
    # Sequential requests are each alone in flight; the machine's idle cores (faked here, since
    # other processes share CI's) decide whether they run solo and are counted.
    monkeypatch.setattr(runtime, "free_cores", lambda cores: free)
    with TestClient(create_app(EmotionSettings(solo_threads=2))) as solo:
        before = samples()
        for _ in range(2):
            r = solo.post("/predict", content=face_jpeg, headers={"Content-Type": "image/jpeg"})
            assert r.status_code == 200
        runs = samples()[("emotion_solo_runs_total", ())] - before[("emotion_solo_runs_total", ())]
    assert runs == solo_runs
