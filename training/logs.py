"""Logging for the training commands, as the services log (services/common/logs.py): one handler on
stderr, plain text or one JSON object a line (TRAINING_LOG_JSON=true), moodtunes' lines at
TRAINING_LOG_LEVEL (INFO). Progress over long loops is a tqdm bar on the same stream."""

from __future__ import annotations

import logging

from services.common.logs import configure_logging
from training.settings import TrainingSettings


def configure() -> None:
    """Called by each command's main(), never at import (a test or a notebook keeps its own logging)."""
    configure_logging("training", TrainingSettings())


def logger(name: str) -> logging.Logger:
    return logging.getLogger(f"moodtunes.training.{name}")
