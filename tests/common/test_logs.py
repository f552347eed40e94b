"""Logging as the services run (granian): one line per request with its id, start-up lines, JSON
when the service's LOG_JSON setting asks."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from samples.music import recommender_env
from services.launch import service


def test_recommender_logs_json_lines_with_the_request_id(tmp_path: Path) -> None:
    env = {**recommender_env(tmp_path), "RECOMMENDER_LOG_JSON": "true"}
    log = tmp_path / "recommender.log"
    with service("recommender", env=env, log=log, timeout=180) as url:
        r = httpx.get(f"{url}/recommend?emotion=sad", headers={"X-Request-ID": "probe-42"})
        assert r.status_code == 200
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert all(line["service"] == "recommender" for line in lines)
    assert any(line["message"].startswith("recommender ready:") for line in lines)
    requests = [line for line in lines if line.get("request_id") == "probe-42"]
    assert len(requests) == 1
    assert requests[0] | {"ms": 0} == requests[0] | {
        "level": "INFO",
        "method": "GET",
        "route": "/recommend",
        "status": 200,
        "ms": 0,
    }


def test_gateway_logs_text_lines_by_default(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    with service("gateway", log=log) as url:
        httpx.get(f"{url}/api/emotions", headers={"X-Request-ID": "probe-43"}).raise_for_status()
        httpx.get(f"{url}/nowhere", headers={"X-Request-ID": "probe-44"})
    text = log.read_text()
    assert "INFO gateway moodtunes.gateway: gateway: emotion=" in text
    assert "GET /api/emotions 200" in text and "rid=probe-43" in text
    assert "rid=probe-44" in text
    # The server's own access line is replaced by ours, which carries the id: one line per request.
    assert text.count("/api/emotions") == 1
