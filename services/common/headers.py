"""Security headers on every response, and the framework's API docs pages off unless asked for.

The page (frontend/) loads only its own modules and stylesheets, images it makes itself (a photo's
preview is a blob: URL, the icon a data: URL), talks only to its own origin, and frames only Spotify's
player; the policy allows that and nothing else: no inline script, no other origin's script, and no
site may frame the page.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join(
    [
        "default-src 'self'",
        # 'wasm-unsafe-eval': the on-device mode's WebAssembly runtime (onnxruntime-web) compiles, and
        # nothing else: no eval, no inline script.
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "frame-src https://open.spotify.com",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
]
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


class SecurityHeaders:
    """Pure ASGI middleware: adds HEADERS to every response that does not set them itself; `docs`:
    the docs pages are served, and get no content policy (theirs would forbid their CDN scripts)."""

    def __init__(self, app: ASGIApp, docs: bool = False) -> None:
        self.app = app
        self.docs = docs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = HEADERS[1:] if self.docs and scope["path"] in DOCS_PATHS else HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in headers if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def drop_docs(app: FastAPI) -> None:
    """Removes the Swagger UI and ReDoc pages, which load their scripts from a CDN and inline; the
    schema itself stays at /openapi.json."""
    kept: list[BaseRoute] = [
        r for r in app.router.routes if not (isinstance(r, Route) and r.path in DOCS_PATHS)
    ]
    app.router.routes[:] = kept
    app.docs_url = app.redoc_url = None
