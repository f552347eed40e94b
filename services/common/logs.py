"""Logging, configured the same for every service when its app is created (after the server's own set-up,
so it wins): one handler on stderr, plain text or one JSON object a line (`<SERVICE>_LOG_JSON`, for a
log collector), moodtunes' loggers at `<SERVICE>_LOG_LEVEL`. The server's start-up and error lines
go through the same handler; its access line is switched off, since the shared instrumentation writes one
line per request that also carries the request id."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import orjson
from pydantic_settings import BaseSettings

_HANDLER = "moodtunes"
# Attributes a record may carry through `extra=` (the access line's), written as JSON fields.
FIELDS = ("request_id", "method", "route", "status", "ms")


class LogSettings(BaseSettings):
    """Every service's settings class inherits these, under its own prefix (EMOTION_LOG_JSON, ...)."""

    # One JSON object a line (time, level, service, logger, message, and the request's fields on the
    # per-request line) instead of plain text.
    log_json: bool = False
    # moodtunes' own lines (per request, model and catalog loading); libraries log at WARNING.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line |= {key: getattr(record, key) for key in FIELDS if hasattr(record, key)}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(service: str, settings: LogSettings) -> None:
    """Idempotent: creating the app again (tests) replaces the handler instead of adding another."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    handler.setFormatter(
        JsonFormatter(service)
        if settings.log_json
        else logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
    )
    root.addHandler(handler)
    logging.getLogger("moodtunes").setLevel(settings.log_level)
    # The servers' own lines (granian's worker, uvicorn's in-process runs) reach the root through these.
    for name in ("_granian", "uvicorn"):
        server = logging.getLogger(name)
        server.handlers.clear()
        server.propagate = True
    for name in ("granian.access", "uvicorn.access"):
        logging.getLogger(name).disabled = True
