"""The page and every API answer carry security headers (real processes): a content policy that allows
only the page's own scripts, styles and origin (and Spotify's player in a frame), no framing by other
sites, no MIME sniffing, no referrer to other origins; the page has no inline script or style the policy
would block, and the docs pages, which load a CDN's scripts, are off."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from services.common.paths import REPO
from tests.integration.stack import Stack

PAGES = sorted(p.name for p in (REPO / "frontend").glob("*.html"))


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in policy.split(";")) if d}


def assert_security_headers(resp: httpx.Response) -> None:
    """The gateway's headers, on any answer: a page, an API answer, an error or a shed request."""
    csp = directives(resp.headers["content-security-policy"])
    # WebAssembly for the on-device mode's runtime, and nothing more: no 'unsafe-eval', no inline script.
    assert csp["default-src"] == ["'self'"] and csp["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
    assert csp["style-src"] == ["'self'"] and csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-src"] == ["https://open.spotify.com"]
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/", *(f"/{p}" for p in PAGES), "/api/emotions", "/healthz"])
def test_the_gateway_sends_security_headers(stack: Stack, path: str) -> None:
    resp = httpx.get(f"{stack.gateway}{path}", timeout=10)
    assert resp.status_code == 200
    assert_security_headers(resp)


# Refusals carry them too (a shed 503 and a 408: tests/evidence/test_http_limits.py).
REFUSALS = [
    ("GET", "/no-such-page", {}, 404),
    ("GET", "/metrics", {}, 404),
    ("GET", "/recommend?emotion=joy", {}, 422),
    ("POST", "/recommend", {}, 405),
    ("POST", "/predict", {"content": b"nope", "headers": {"Content-Type": "text/plain"}}, 415),
    ("POST", "/analyze", {"content": b"", "headers": {"Content-Type": "image/jpeg"}}, 422),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"), REFUSALS, ids=[f"{m} {p}" for m, p, _, _ in REFUSALS]
)
def test_the_gateway_sends_them_on_refusals(
    stack: Stack, method: str, path: str, body: dict[str, Any], status: int
) -> None:
    resp = httpx.request(method, f"{stack.gateway}{path}", timeout=10, **body)
    assert resp.status_code == status, resp.text
    assert_security_headers(resp)


@pytest.mark.parametrize("service", ["emotion", "recommender"])
@pytest.mark.parametrize("path", ["/healthz", "/no-such-path"])
def test_the_backends_send_them_too(stack: Stack, service: str, path: str) -> None:
    resp = httpx.get(f"{getattr(stack, service)}{path}", timeout=10)
    assert resp.status_code == (200 if path == "/healthz" else 404)
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if "style" in named:
            self.problems.append(f"inline style on <{tag}>")
        self.problems += [f"inline handler {k} on <{tag}>" for k in named if k.startswith("on")]
        if tag == "script":
            src = named.get("src") or ""
            if not src:
                self.problems.append("inline <script>")
            elif re.match(r"^(https?:)?//", src):
                self.problems.append(f"script from another origin: {src}")
        if (
            tag == "link"
            and named.get("rel") == "stylesheet"
            and re.match(r"^(https?:)?//", named.get("href") or "")
        ):
            self.problems.append(f"stylesheet from another origin: {named.get('href')}")


@pytest.mark.parametrize("page", PAGES)
def test_the_pages_need_nothing_the_policy_forbids(page: str) -> None:
    parser = _Inline()
    parser.feed((REPO / "frontend" / page).read_text())
    assert not parser.problems, parser.problems


@pytest.mark.parametrize("service", ["emotion", "recommender", "gateway"])
def test_the_docs_pages_are_off_and_the_schema_is_served(stack: Stack, service: str) -> None:
    base = getattr(stack, service)
    for path in ("/docs", "/redoc"):
        assert httpx.get(f"{base}{path}", timeout=10).status_code == 404
    assert httpx.get(f"{base}/openapi.json", timeout=10).json()["openapi"].startswith("3.")
