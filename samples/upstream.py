"""A fake upstream for the recommender's first run: a local HTTP server serving the two public files (or
bytes standing in for them), optionally misbehaving, and counting requests."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from samples.servers import http_server

SONGS, MOODS = "spotify_songs.csv", "data_moods.csv"
STALL_S = 60.0


@dataclass
class Files:
    """What the server serves: path -> bytes; `short` paths announce their full length and send half
    (`short_once`: only the first time; `no_length`: half, without a Content-Length; `stall`: half, then
    nothing until `release`); every GET is counted."""

    content: dict[str, bytes]
    short: set[str] = field(default_factory=set)
    short_once: set[str] = field(default_factory=set)
    no_length: set[str] = field(default_factory=set)
    stall: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[str] = field(default_factory=list)


def _handler(files: Files) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            name = self.path.lstrip("/")
            files.requests.append(name)
            body = files.content.get(name)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            if name not in files.no_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            first = files.requests.count(name) == 1
            cut = name in files.short | files.no_length | files.stall or (first and name in files.short_once)
            self.wfile.write(body[: len(body) // 2] if cut else body)
            if name in files.stall:
                self.wfile.flush()
                files.release.wait(STALL_S)
            self.close_connection = True

        def log_message(self, *_: object) -> None:
            pass

    return Handler


def serving(files: Files) -> contextlib.AbstractContextManager[str]:
    return http_server(_handler(files))


def fresh_install(cache: Path, url: str) -> dict[str, str]:
    """Nothing configured (empty: not even ../shared), the cache in `cache`, the files at `url`."""
    return {
        "RECOMMENDER_CATALOG_PATH": "",
        "RECOMMENDER_LABELLED_PATH": "",
        "MOODTUNES_CACHE_DIR": str(cache),
        "RECOMMENDER_FIRST_RUN_CATALOG_URL": f"{url}/{SONGS}",
        "RECOMMENDER_FIRST_RUN_MOODS_URL": f"{url}/{MOODS}",
    }
