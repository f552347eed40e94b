"""The optional `boxes` field: detection in a region around the previous frame's faces."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from samples.images import encode
from services.common.contracts import PredictResponse
from tests.emotion.test_bad_input import assert_error


def boxes_json(*boxes: tuple) -> str:
    return json.dumps([dict(zip("xywh", box, strict=True)) for box in boxes])


def post(client: TestClient, jpeg: bytes, boxes: str | None, query: str = ""):
    data = None if boxes is None else {"boxes": boxes}
    return client.post(f"/predict{query}", files={"image": ("f.jpg", jpeg, "image/jpeg")}, data=data)


def first(client: TestClient, jpeg: bytes) -> PredictResponse:
    r = post(client, jpeg, None)
    assert r.status_code == 200, r.text
    answer = PredictResponse.model_validate(r.json())
    assert answer.region is None
    return answer


def test_previous_boxes_are_searched_in_a_region(client: TestClient, face_jpeg: bytes) -> None:
    full = first(client, face_jpeg)
    box = full.faces[0].box
    # The answer's own faces[].box objects are what a client sends back.
    r = post(client, face_jpeg, json.dumps([f.box.model_dump() for f in full.faces]))
    assert r.status_code == 200, r.text
    tracked = PredictResponse.model_validate(r.json())
    assert tracked.region is not None
    region = tracked.region
    assert region.w * region.h < 0.5 * full.width * full.height
    assert len(tracked.faces) == 1
    got = tracked.faces[0].box
    # The same face, within a few pixels of the full-frame box (the two inputs differ in scale).
    assert abs(got.x + got.w / 2 - (box.x + box.w / 2)) < 0.15 * box.w
    assert abs(got.y + got.h / 2 - (box.y + box.h / 2)) < 0.15 * box.h
    assert 0.8 < got.w / box.w < 1.25
    assert tracked.faces[0].emotion == full.faces[0].emotion


def test_a_moved_face_is_still_found_in_the_region(client: TestClient, face_jpeg: bytes) -> None:
    box = first(client, face_jpeg).faces[0].box
    # The face moved by a quarter of its size since the previous frame: still inside the region.
    moved = (box.x - box.w // 4, box.y + box.h // 4, box.w, box.h)
    r = post(client, face_jpeg, boxes_json(moved))
    assert r.status_code == 200, r.text
    assert r.json()["region"] is not None and len(r.json()["faces"]) == 1


def test_lost_face_falls_back_to_the_whole_frame(client: TestClient, face_jpeg: bytes) -> None:
    # A stale box in the bottom-left corner, far from the face: the region holds no face.
    r = post(client, face_jpeg, boxes_json((10, 400, 60, 60)))
    assert r.status_code == 200, r.text
    assert r.json()["region"] is None
    assert len(r.json()["faces"]) == 1


def test_empty_list_is_the_whole_frame(client: TestClient, face_jpeg: bytes) -> None:
    r = post(client, face_jpeg, "[]")
    assert r.status_code == 200, r.text
    assert r.json()["region"] is None and len(r.json()["faces"]) == 1


def test_no_face_anywhere(client: TestClient) -> None:
    blank = encode(np.full((480, 640, 3), 128, np.uint8))
    r = post(client, blank, boxes_json((200, 100, 120, 140)))
    assert r.status_code == 200, r.text
    assert r.json()["faces"] == [] and r.json()["region"] is None


@pytest.mark.parametrize(
    ("boxes", "words"),
    [
        ("not json", ("boxes", "json")),
        ("\xff\xfe", ("boxes",)),
        ('{"x": 1, "y": 2, "w": 3, "h": 4}', ("boxes", "array")),
        ("[[1, 2, 30, 40]]", ("boxes[0]",)),  # faces[].box objects only
        ('[{"x": 1, "y": 2, "w": 30, "h": "4"}]', ("boxes[0].h", "integer")),
        ('[{"x": 1.5, "y": 2, "w": 30, "h": 40}]', ("boxes[0].x", "integer")),
        ('[{"x": 1, "y": 2, "w": true, "h": 40}]', ("boxes[0].w", "integer")),
        ('[{"x": 1, "y": 2, "w": 30}]', ("boxes[0].h", "required")),
        (boxes_json((1, 2, 0, 40)), ("boxes[0]", "width")),
        (boxes_json((1, 2, 30, -4)), ("boxes[0]", "height")),
        ("[null]", ("boxes[0]",)),
        (boxes_json(*[(1, 2, 30, 40)] * 21), ("at most 20",)),
        (boxes_json((5000, 5000, 30, 40)), ("outside",)),
        (boxes_json((-100, 10, 50, 50)), ("outside",)),
        ("[" + " " * 5000 + "]", ("too long",)),
    ],
)
def test_bad_boxes_are_422(client: TestClient, face_jpeg: bytes, boxes: str, words: tuple[str, ...]) -> None:
    assert_error(post(client, face_jpeg, boxes), 422, *words)


def test_boxes_without_detection_is_422(client: TestClient, face_jpeg: bytes) -> None:
    assert_error(post(client, face_jpeg, boxes_json((1, 2, 30, 40)), "?detect=false"), 422, "detect")
