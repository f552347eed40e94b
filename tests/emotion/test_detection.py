"""The service's face detector on the real photos (marker `data`), at the two input sizes it runs
(video frames and photos), as reports/detectors.json (python -m bench.detectors) says, less the margins
docs/results.md ("Margins") states: the photos' faces, the single-face photos with exactly one, the group
photos, the photos turned +-25 degrees, and the photos fitted into frames with face-free pictures beside
them (found faces and false detections; timings are the bench's, not checked here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.detectors import detectors, evaluate, load_photos, no_face_pictures
from services.common.paths import REPO
from services.emotion.settings import EmotionSettings

pytestmark = pytest.mark.data

# docs/results.md, "Margins": counts on the photos themselves (27 faces, 36 tilted) have none; the photos
# fitted into frames may lose one face per frame size (small faces near the detector's threshold).
FRAME_MARGIN = 1
SETTINGS = EmotionSettings()
SERVICE = [
    f"centerface grey (<={SETTINGS.detect.max_side} px)",
    f"centerface grey (<={SETTINGS.detect.photo_max_side} px)",
]


@pytest.mark.parametrize("name", SERVICE)
def test_the_service_detector_finds_the_faces_the_report_says(data_dir: Path, name: str) -> None:
    reported: dict[str, Any] = json.loads((REPO / "reports" / "detectors.json").read_text())[name]
    got: dict[str, Any] = evaluate(name, detectors()[name](), load_photos(data_dir), no_face_pictures(), None)
    for key in ("photos", "group", "tilted_640x480"):
        assert got[key]["found"] >= reported[key]["found"], (key, got[key], reported[key])
        assert got[key]["extra"] <= reported[key]["extra"], (key, got[key], reported[key])
    assert got["single_exactly_one"] >= reported["single_exactly_one"]
    faces = reported["photos"]["faces"]
    for size, frame in reported["frames"].items():
        found = round(got["frames"][size]["recall"] * faces)
        assert found >= round(frame["recall"] * faces) - FRAME_MARGIN, (size, got["frames"][size], frame)
        assert got["frames"][size]["false_on_face_free_frames"] <= frame["false_on_face_free_frames"], size
