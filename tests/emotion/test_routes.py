"""POST /predict on good inputs: raw and multipart bodies, formats, several faces, detect=false."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from samples.images import HEAD, encode
from services.common.contracts import EMOTIONS, PredictResponse
from services.emotion.pipeline import EmotionPipeline
from services.emotion.settings import DetectSettings, EmotionSettings


def post_raw(client: TestClient, body: bytes, ctype: str = "image/jpeg", query: str = ""):
    return client.post(f"/predict{query}", content=body, headers={"Content-Type": ctype})


def test_raw_jpeg_one_face(client: TestClient, pipeline: EmotionPipeline, face_jpeg: bytes) -> None:
    r = post_raw(client, face_jpeg)
    assert r.status_code == 200, r.text
    body = PredictResponse.model_validate(r.json())
    assert (body.width, body.height) == (640, 480)
    assert len(body.faces) == 1
    face = body.faces[0]
    # The astronaut's face sits in the upper middle of the frame.
    assert 250 < face.box.x + face.box.w / 2 < 450 and 40 < face.box.y + face.box.h / 2 < 250
    assert 60 < face.box.w < 250
    assert set(face.probabilities) == set(EMOTIONS)
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert face.confidence == max(face.probabilities.values())
    assert face.probabilities[face.emotion] == face.confidence
    assert body.model.startswith(pipeline.classifier.name.split("/")[0])
    assert set(body.timings_ms) == {"decode", "detect", "classify"}
    assert all(v >= 0 for v in body.timings_ms.values())


def test_multipart_matches_raw_body(client: TestClient, face_jpeg: bytes) -> None:
    raw = post_raw(client, face_jpeg).json()
    # The part's declared type is ignored: files are judged by their bytes.
    multi = client.post("/predict", files={"image": ("frame.bin", face_jpeg, "application/octet-stream")})
    assert multi.status_code == 200, multi.text
    assert multi.json()["faces"] == raw["faces"]


@pytest.mark.parametrize(
    ("fmt", "ctype", "kwargs"),
    [
        ("PNG", "image/png", {}),
        ("WEBP", "image/webp", {"quality": 90}),
    ],
)
def test_png_and_webp(
    client: TestClient, frame_640x480: np.ndarray, fmt: str, ctype: str, kwargs: dict
) -> None:
    r = post_raw(client, encode(frame_640x480, fmt, **kwargs), ctype)
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) == 1


def test_several_faces_largest_first_in_one_batch(
    client: TestClient, pipeline: EmotionPipeline, monkeypatch: pytest.MonkeyPatch, three_heads
) -> None:
    image, lefts_largest_first = three_heads
    calls: list[int] = []
    real_run = pipeline.classifier.graph.run

    def counting(
        outputs: Sequence[str] | None, feeds: dict[str, np.ndarray], alone: bool = False
    ) -> list[Any]:
        calls.append(len(feeds["squares"]))
        return real_run(outputs, feeds, alone)

    monkeypatch.setattr(pipeline.classifier.graph, "run", counting)
    r = post_raw(client, encode(image), "image/jpeg")
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert len(faces) == 3
    areas = [f["box"]["w"] * f["box"]["h"] for f in faces]
    assert areas == sorted(areas, reverse=True)
    for face, left in zip(faces, lefts_largest_first, strict=True):
        assert left <= face["box"]["x"] + face["box"]["w"] / 2 <= left + 320
    assert calls == [3], "all faces of a frame must be classified in one ONNX Runtime call"
    # Three copies of one face: the batch gives each the same emotion.
    assert len({f["emotion"] for f in faces}) == 1


def test_no_face_is_an_empty_list(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for image in (np.full((240, 320, 3), 128, np.uint8), noise):
        r = post_raw(client, encode(image, "PNG"), "image/png")
        assert r.status_code == 200, r.text
        assert r.json()["faces"] == []
        assert (r.json()["width"], r.json()["height"]) == (320, 240)


def test_one_pixel_image_has_no_face(client: TestClient) -> None:
    r = post_raw(client, encode(np.zeros((1, 1, 3), np.uint8), "PNG"), "image/png")
    assert r.status_code == 200, r.text
    assert r.json()["faces"] == [] and r.json()["width"] == 1


def test_detect_false_classifies_the_whole_image(
    client: TestClient, astronaut: np.ndarray, face_jpeg: bytes
) -> None:
    from samples.images import HEAD

    head = astronaut[HEAD]
    r = post_raw(client, encode(head), query="?detect=false")
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert len(faces) == 1
    assert faces[0]["box"] == {"x": 0, "y": 0, "w": head.shape[1], "h": head.shape[0]}
    # A whole frame is one "face" too when detection is off, even with no face in it.
    blank = post_raw(client, encode(np.full((48, 48, 3), 90, np.uint8), "PNG"), "image/png", "?detect=false")
    assert len(blank.json()["faces"]) == 1
    assert post_raw(client, face_jpeg, query="?detect=nonsense").status_code == 422


def test_exif_orientation_is_applied(client: TestClient, frame_640x480: np.ndarray) -> None:
    """A camera photo stored sideways with an EXIF orientation tag is read upright."""
    from PIL import Image

    sideways = np.ascontiguousarray(np.rot90(frame_640x480))  # stored rotated 90 degrees
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    r = post_raw(client, encode(sideways, exif=exif))
    assert r.status_code == 200, r.text
    assert (r.json()["width"], r.json()["height"]) == (640, 480)
    assert len(r.json()["faces"]) == 1


def test_large_multipart_upload_never_touches_disk(
    client: TestClient, pipeline: EmotionPipeline, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """Starlette's form parser would spool a >1 MB file to a temp file; ours keeps it in memory.
    With the temp dir pointing nowhere, any spill to disk would fail the request."""
    import tempfile

    noise = np.random.default_rng(3).integers(0, 255, (1000, 1200, 3), dtype=np.uint8)
    body = encode(noise, quality=98)
    assert 1_000_000 < len(body) < pipeline.settings.max_upload_bytes
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    r = client.post("/predict", files={"image": ("big.jpg", body, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert (r.json()["width"], r.json()["height"]) == (1200, 1000)


def test_photos_are_searched_finer_than_video_frames(astronaut: np.ndarray) -> None:
    """A 1600x1200 photo (what the page uploads at most) with one small head: found with the
    photo detector input, missed when the photo is searched at the video frames' input size."""
    head = astronaut[HEAD]
    canvas = np.full((1200, 1600, 3), 120, np.uint8)
    small = cv2.resize(head, (round(head.shape[1] * 150 / head.shape[0]), 150), interpolation=cv2.INTER_AREA)
    canvas[500:650, 700 : 700 + small.shape[1]] = small
    photo = encode(canvas, quality=90)
    as_photo = EmotionPipeline(EmotionSettings()).predict(photo)
    assert len(as_photo.faces) == 1
    box = as_photo.faces[0].box
    assert 700 <= box.x + box.w / 2 <= 700 + small.shape[1] and 500 <= box.y + box.h / 2 <= 650
    settings = EmotionSettings(detect=DetectSettings(photo_max_side=DetectSettings().max_side))
    assert EmotionPipeline(settings).predict(photo).faces == []
