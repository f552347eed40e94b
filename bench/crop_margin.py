"""Chooses the crop geometry that makes a detected face look like a FER2013 face.

    .venv/bin/python -m bench.crop_margin [--data ../shared/data] [--n 800]

1. FER framing, measured: FER2013 validation faces (the split used for model selection) are
   enlarged 4x and set on a grey canvas, CenterFace finds the face, and the box is compared with the
   FER frame: margin = frame side / box's longer side, shift_y = (frame centre - box centre) / box h.
2. The same faces are then cropped back out of the canvas through the service's crop with each
   margin of a sweep and classified: the margin that keeps accuracy closest to the model on the raw
   48x48 faces is the one that reproduces the training framing.
3. The 18 single-face photos: agreement of the largest face's emotion with labels.csv per margin
   (reported, not used to pick: 18 photos are too few to tune on).

Writes reports/crop_margin.json and reports/crop_margin.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from bench import report
from bench.detectors import read_rgb
from services.common.contracts import EMOTIONS, Box
from services.emotion.classifier import EmotionClassifier
from services.emotion.detector import CenterFaceDetector
from services.emotion.imaging import face_crop, to_grey
from services.emotion.settings import EmotionSettings

MARGINS = [0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
UPSCALE = 4
CANVAS = 48 * UPSCALE * 2


def fer_on_canvas(face: np.ndarray) -> np.ndarray:
    big = cv2.resize(face, (48 * UPSCALE, 48 * UPSCALE), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((CANVAS, CANVAS), 128, np.uint8)
    o = (CANVAS - big.shape[0]) // 2
    canvas[o : o + big.shape[0], o : o + big.shape[1]] = big
    return canvas


def sweep_predictions(
    classifier: EmotionClassifier,
    greys: list[np.ndarray],
    boxes: list[Box],
    shifts: list[float],
) -> Iterator[tuple[float, float, np.ndarray]]:
    """(shift_y, margin, each face's predicted class) for every crop geometry of the sweep."""
    for shift in shifts:
        for m in MARGINS:
            crops = np.stack(
                [face_crop(g, b, classifier.size, m, shift) for g, b in zip(greys, boxes, strict=True)]
            )
            yield shift, m, classifier.logits(crops).argmax(1)


def fer_framing(
    data_dir: Path, n: int, detector: CenterFaceDetector, classifier: EmotionClassifier
) -> dict[str, Any]:
    fer = np.load(data_dir / "fer2013" / "fer2013.npz")
    idx = np.flatnonzero(fer["split"] == "val")
    idx = np.random.default_rng(0).choice(idx, size=min(n, idx.size), replace=False)
    images, labels = fer["images"][idx], fer["labels"][idx]
    direct = classifier.logits(images.astype(np.float32)).argmax(1)
    boxes, kept = [], []
    for i, face in enumerate(images):
        found = detector(fer_on_canvas(face))
        if found:
            boxes.append(found[0].box)
            kept.append(i)
    box = np.array([(b.x, b.y, b.w, b.h) for b in boxes], float)
    frame = 48 * UPSCALE
    side = np.maximum(box[:, 2], box[:, 3])
    margin = frame / side
    shift_y = (CANVAS / 2 - (box[:, 1] + box[:, 3] / 2)) / box[:, 3]
    shift_x = (CANVAS / 2 - (box[:, 0] + box[:, 2] / 2)) / box[:, 2]
    kept_idx = np.array(kept)
    shifts = sorted({0.0, round(float(np.median(shift_y)), 2)})
    greys = [fer_on_canvas(images[i]) for i in kept]
    sweep = [
        {
            "margin": m,
            "shift_y": shift,
            "accuracy": float((pred == labels[kept_idx]).mean()),
            "agreement_with_raw": float((pred == direct[kept_idx]).mean()),
        }
        for shift, m, pred in sweep_predictions(classifier, greys, boxes, shifts)
    ]
    q = lambda a: [float(np.percentile(a, p)) for p in (25, 50, 75)]  # noqa: E731
    return {
        "n": int(len(images)),
        "detected": int(len(kept)),
        "raw_accuracy_on_detected": float((direct[kept_idx] == labels[kept_idx]).mean()),
        "margin_q25_q50_q75": q(margin),
        "shift_y_q25_q50_q75": q(shift_y),
        "shift_x_q25_q50_q75": q(shift_x),
        "box_aspect_h_over_w_median": float(np.median(box[:, 3] / box[:, 2])),
        "shifts": shifts,
        "sweep": sweep,
    }


def photo_sweep(
    data_dir: Path,
    detector: CenterFaceDetector,
    classifier: EmotionClassifier,
    shifts: list[float],
    settings: EmotionSettings,
) -> list[dict[str, float]]:
    labels = pd.read_csv(data_dir / "photos" / "labels.csv")
    single = labels[labels.n_faces_approx == 1]
    greys, boxes, truth = [], [], []
    for row in single.itertuples():
        rgb = read_rgb(data_dir / "photos" / row.filename)
        grey = to_grey(rgb)
        found = detector(grey, settings.detect.side(grey.shape[1], grey.shape[0]))  # as the service
        if found:
            greys.append(grey)
            boxes.append(found[0].box)
            truth.append(EMOTIONS.index(row.emotion))
    return [
        {
            "margin": m,
            "shift_y": shift,
            "n": len(single),
            "detected": len(boxes),
            "agree": int((pred == np.array(truth)).sum()),
        }
        for shift, m, pred in sweep_predictions(classifier, greys, boxes, shifts)
    ]


def main(argv: list[str] | None = None) -> int:
    from training.settings import settings as training

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=training.data)
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--out", type=Path, default=report.REPORTS)
    args = parser.parse_args(argv)
    if not (args.data / "fer2013" / "fer2013.npz").is_file():
        print(f"no FER2013 under {args.data}: set --data or MOODTUNES_DATA", file=sys.stderr)
        return 2
    settings = EmotionSettings()
    classifier = EmotionClassifier(settings.model_path, settings.card_file, threads=2)
    detector = CenterFaceDetector(threads=2, max_side=settings.detect.max_side)
    fer = fer_framing(args.data, args.n, detector, classifier)
    photos = photo_sweep(args.data, detector, classifier, fer["shifts"], settings)
    report.write(
        args.out,
        "crop_margin",
        {"model": classifier.name, "fer": fer, "photos": photos},
        title="Crop margin: matching detector boxes to FER2013 framing",
        command="python -m bench.crop_margin",
        notes=[
            "fer: FER2013 validation faces found by CenterFace; margin = FER frame side / box longer side, "
            "shift_y = (frame centre - box centre) / box height (quartiles), raw_accuracy_on_detected: the "
            "model on these faces as FER frames them; sweep: the same faces re-cropped through the service's "
            "crop, accuracy and agreement with the raw face's answer.",
            "photos: the single-face photos, largest face's emotion against labels.csv (agree of n).",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
