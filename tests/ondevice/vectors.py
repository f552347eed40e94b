"""The shared test vectors of the steps that exist in both Python (services/emotion) and JavaScript
(frontend/ondevice.js): inputs and the Python code's answers, in tests/ondevice/vectors.json. Both test
suites run them (test_vectors.py, vectors.test.mjs), so neither side can drift from the other.

Regenerate after a deliberate change of the Python side: `python -m tests.ondevice.vectors`.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from services.common.contracts import Box
from services.common.errors import InvalidRequest
from services.emotion.detector import detections, input_size
from services.emotion.imaging import square_crop_box
from services.emotion.pipeline import EmotionPipeline, framed_window, median
from services.emotion.settings import CropSettings, EmotionSettings, TrackSettings

FILE = Path(__file__).with_name("vectors.json")


def pipeline_settings(settings: EmotionSettings) -> dict:
    """The settings the page gets (as the emotion service's GET /models names them)."""
    detect, track, crop = settings.detect, settings.track, settings.crop
    return {
        "detect_max_side": detect.max_side,
        "video_max_side": detect.video_max_side,
        "photo_detect_max_side": detect.photo_max_side,
        "min_face_px": detect.min_face_px,
        "max_faces": detect.max_faces,
        "track_scale": track.scale,
        "track_max_side": track.max_side,
        "track_face_px": track.face_px,
        "crop_margin": crop.margin,
        "crop_shift_y": crop.shift_y,
        "frame_retry": detect.frame_retry,
        "retry_side": 160,
        "align": crop.align,
        "max_roll": crop.max_roll,
    }


def _region(
    settings: EmotionSettings, width: int, height: int, hint: list[tuple[int, int, int, int]]
) -> object:
    fake = SimpleNamespace(settings=settings)
    try:
        boxes = [Box(x=x, y=y, w=w, h=h) for x, y, w, h in hint]
        where = EmotionPipeline.region(fake, np.zeros((height, width), np.uint8), boxes)  # type: ignore[arg-type]
    except InvalidRequest as exc:
        return {"error": exc.message}
    if where is None:
        return None
    box = where[0]
    return {"window": [box.x, box.y, box.w, box.h], "side": where[1]}


def _squares(settings: EmotionSettings, face: dict) -> list[float]:
    x0, y0, side = square_crop_box(
        Box(x=face["x"], y=face["y"], w=face["w"], h=face["h"]), settings.crop.margin, settings.crop.shift_y
    )
    roll = face["roll"] if settings.crop.align and abs(face["roll"]) <= settings.crop.max_roll else 0.0
    return [x0, y0, side, roll]


def build() -> dict:
    rng = np.random.default_rng(23)
    settings = [
        EmotionSettings(),
        EmotionSettings(
            track=TrackSettings(scale=3.0, max_side=128), crop=CropSettings(margin=1.25, shift_y=0.1)
        ),
    ]
    cases: dict[str, list] = {
        "round": [],
        "input_size": [],
        "region": [],
        "framed": [],
        "median": [],
        "detections": [],
        "square": [],
        "grey": [],
    }
    for v in [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49, 3.51, 7.0, -7.25, 1e6 + 0.5]:
        cases["round"].append({"in": v, "out": round(v)})
    for w, h, side in [
        (640, 480, 256),
        (480, 640, 256),
        (3000, 2000, 640),
        (100, 40, 256),
        (17, 900, 160),
        (1920, 1080, 640),
        (640.0 * 2, 480.0 * 2, 160),
        (123.5, 77.25, 160),
    ]:
        cases["input_size"].append({"in": [w, h, side], "out": list(input_size(w, h, side))})
    for s in settings:
        p = pipeline_settings(s)
        for width, height in [(640, 480), (320, 240), (1920, 1080), (480, 640)]:
            for _ in range(12):
                n = int(rng.integers(1, 4))
                hint = []
                for _ in range(n):
                    w = int(rng.integers(8, max(9, width // 2)))
                    h = int(rng.integers(8, max(9, height // 2)))
                    x = int(rng.integers(-w // 2, width - w // 2))
                    y = int(rng.integers(-h // 2, height - h // 2))
                    hint.append((x, y, w, h))
                cases["region"].append(
                    {
                        "pipeline": p,
                        "in": [width, height, [dict(zip("xywh", b, strict=True)) for b in hint]],
                        "out": _region(s, width, height, hint),
                    }
                )
            outside = [(width + 5, 10, 40, 40)]
            cases["region"].append(
                {
                    "pipeline": p,
                    "in": [width, height, [dict(zip("xywh", b, strict=True)) for b in outside]],
                    "out": _region(s, width, height, outside),
                }
            )
        for _ in range(20):
            roll = float(rng.uniform(-70, 70))
            face = {
                "x": int(rng.integers(-30, 600)),
                "y": int(rng.integers(-30, 400)),
                "w": int(rng.integers(20, 300)),
                "h": int(rng.integers(20, 300)),
                "roll": roll,
            }
            cases["square"].append({"pipeline": p, "in": face, "out": _squares(s, face)})
    for width, height, retry in [(640, 480, 0.5), (333, 517, 0.5), (100, 100, 0.0), (99, 1000, 1.25)]:
        cases["framed"].append({"in": [width, height, retry], "out": framed_window(width, height, retry)})
    for n in [1, 2, 7, 100, 1001]:
        grey = rng.integers(0, 256, n).astype(np.uint8)
        cases["median"].append({"in": grey.tolist(), "out": median(grey)})
    cases["median"].append({"in": [0, 255], "out": median(np.array([0, 255], np.uint8))})
    for _ in range(6):
        k = int(rng.integers(0, 6))
        rows = []
        for _ in range(k):
            w, h = float(rng.integers(5, 120)), float(rng.integers(5, 120))
            rows.append(
                [
                    float(rng.integers(0, 500)),
                    float(rng.integers(0, 400)),
                    w,
                    h,
                    float(np.float32(rng.uniform(0.5, 1))),
                    float(np.float32(rng.normal(40, 10))),
                    float(np.float32(rng.normal(0, 10))),
                ]
            )
        if rows:
            rows.append(list(rows[0][:4]) + [0.6, -30.0, 2.0])  # an equal area: the stable sort's order
        found = detections(rows, 20)
        cases["detections"].append(
            {
                "in": [rows, 20],
                "out": [{**d.box.model_dump(), "score": d.score, "roll": d.roll} for d in found],
            }
        )
    for _ in range(3):
        rgb = rng.integers(0, 256, (4, 5, 3)).astype(np.uint8)
        rgba = np.concatenate([rgb, np.full((4, 5, 1), 255, np.uint8)], axis=2)
        grey = np.asarray(Image.fromarray(rgb).convert("L"))
        cases["grey"].append({"in": rgba.ravel().tolist(), "out": grey.ravel().tolist()})
    return cases


def main() -> None:
    FILE.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {FILE}")


if __name__ == "__main__":
    main()
