"""/predict on generated pictures (hypothesis): any real JPEG, PNG or WebP, with a face or none, gets a
200 whose answer is consistent with the picture, and a face pasted in at a size the detector is meant
to see is found where it was pasted."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from services.common.contracts import EMOTIONS
from tests.pictures import Picture, pictures

BOUNDED = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def post(client: TestClient, picture: Picture, query: str = "") -> dict:
    r = client.post(f"/predict{query}", content=picture.data, headers={"Content-Type": picture.media_type})
    assert r.status_code == 200, r.text
    return r.json()


@BOUNDED
@given(picture=pictures())
def test_any_picture_gets_a_consistent_answer(client: TestClient, picture: Picture) -> None:
    answer = post(client, picture)
    assert (answer["width"], answer["height"]) == (picture.width, picture.height)
    areas = []
    for face in answer["faces"]:
        box = face["box"]
        assert box["x"] >= 0 and box["y"] >= 0 and box["w"] >= 1 and box["h"] >= 1
        assert box["x"] + box["w"] <= picture.width and box["y"] + box["h"] <= picture.height
        probs = face["probabilities"]
        assert list(probs) == list(EMOTIONS) and math.isclose(sum(probs.values()), 1, abs_tol=1e-3)
        assert face["emotion"] == max(probs, key=probs.get)
        assert face["confidence"] == pytest.approx(probs[face["emotion"]], abs=1e-6)
        areas.append(box["w"] * box["h"])
    assert areas == sorted(areas, reverse=True)  # largest first
    if picture.head is not None:
        x, y, w, h = picture.head
        centres = [
            (f["box"]["x"] + f["box"]["w"] / 2, f["box"]["y"] + f["box"]["h"] / 2) for f in answer["faces"]
        ]
        assert any(x <= cx <= x + w and y <= cy <= y + h for cx, cy in centres), (
            picture.head,
            answer["faces"],
        )


@BOUNDED
@given(picture=pictures())
def test_without_detection_the_whole_picture_is_the_face(client: TestClient, picture: Picture) -> None:
    answer = post(client, picture, "?detect=false")
    [face] = answer["faces"]
    assert face["box"] == {"x": 0, "y": 0, "w": picture.width, "h": picture.height}
