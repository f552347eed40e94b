"""Inputs built from scikit-image's public-domain astronaut photo, never from ../shared."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from samples import images
from samples.images import encode
from services.emotion.app import create_app
from services.emotion.pipeline import EmotionPipeline


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return images.astronaut()


@pytest.fixture(scope="session")
def frame_640x480() -> np.ndarray:
    """A webcam-sized frame with one face: the astronaut photo's top, widened to 4:3."""
    return images.frame_640x480()


@pytest.fixture(scope="session")
def face_jpeg(frame_640x480: np.ndarray) -> bytes:
    return encode(frame_640x480, quality=90)


@pytest.fixture(scope="session")
def three_heads(astronaut: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Three copies of the astronaut's head, side by side at three sizes, the largest in the middle.
    Returns the image and the heads' left edges, largest first."""
    head = images.head()
    canvas = np.full((400, 900, 3), 200, np.uint8)
    placed = []
    for x0, height in ((20, 200), (300, 360), (660, 260)):
        width = round(head.shape[1] * height / head.shape[0])
        scaled = cv2.resize(head, (width, height), interpolation=cv2.INTER_AREA)
        canvas[20 : 20 + height, x0 : x0 + width] = scaled
        placed.append((height, x0))
    return canvas, [x0 for _, x0 in sorted(placed, reverse=True)]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture(scope="module")
def pipeline(client: TestClient) -> EmotionPipeline:
    """The pipeline the client's app answers with (TestClient types its app as any ASGI app)."""
    assert isinstance(client.app, FastAPI)
    return client.app.state.pipeline
