"""Gateway configuration: env names, CORS closed by default, frontend and helper endpoints."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.contracts import EMOTIONS
from services.gateway.settings import GatewaySettings
from tests.gateway.conftest import GatewayFactory
from tests.gateway.faults import closed_url


def test_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/3")
    monkeypatch.setenv("GATEWAY_EMOTION_URL", "http://emotion:8001")
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("GATEWAY_STEADINESS_WINDOW", "7")
    monkeypatch.setenv("GATEWAY_RECOMMENDER_TIMEOUT_S", "2.5")
    monkeypatch.setenv("GATEWAY_SESSIONS_TTL_S", "60")
    settings = GatewaySettings()
    assert settings.recommender.timeout_s == 2.5 and settings.sessions.ttl_s == 60
    assert settings.redis.url == "redis://example:6379/3"
    assert settings.emotion.url == "http://emotion:8001"
    assert settings.cors_origins == ["http://a.example", "http://b.example"]
    assert settings.steadiness.window == 7


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "GATEWAY_CORS_ORIGINS", "GATEWAY_MAX_UPLOAD_BYTES"):
        monkeypatch.delenv(name, raising=False)
    settings = GatewaySettings()
    assert settings.cors_origins == []
    assert settings.redis.url is None
    assert settings.max_upload_bytes == 8 * 1024 * 1024
    assert (settings.frontend_dir / "index.html").is_file()


def test_votes_must_fit_the_window() -> None:
    with pytest.raises(ValidationError, match="votes"):
        GatewaySettings.model_validate({"steadiness": {"window": 3, "votes": 4}})


def test_cors_is_closed_by_default(make_gateway: GatewayFactory) -> None:
    with make_gateway(emotion_url=closed_url(), recommender_url=closed_url()) as client:
        simple = client.get("/api/emotions", headers={"Origin": "http://evil.example"})
        preflight = client.options(
            "/analyze", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        )
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allows_only_configured_origins(make_gateway: GatewayFactory) -> None:
    with make_gateway(
        emotion_url=closed_url(), recommender_url=closed_url(), cors_origins=["http://app.example"]
    ) as client:
        allowed = client.options(
            "/analyze",
            headers={
                "Origin": "http://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-session-id",
            },
        )
        other = client.get("/api/emotions", headers={"Origin": "http://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://app.example"
    assert "access-control-allow-origin" not in other.headers


def test_serves_frontend_and_emotion_list(make_gateway: GatewayFactory) -> None:
    with make_gateway(emotion_url=closed_url(), recommender_url=closed_url()) as client:
        page = client.get("/")
        script = client.get("/main.js")
        api = client.get("/api.js")
        emotions = client.get("/api/emotions").json()
        ready = client.get("/readyz")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script type="module" src="main.js"></script>' in page.text
    # Browsers run a module only when it is served with a JavaScript type.
    for module in (script, api):
        assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
    assert "/analyze" in api.text
    steadiness = GatewaySettings().steadiness.model_dump()
    assert emotions == {"emotions": list(EMOTIONS), "strategies": ["match", "lift"], "steadiness": steadiness}
    # The gateway itself is ready without its backends: it answers with clear 503s for them.
    assert ready.status_code == 200
