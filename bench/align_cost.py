"""What aligning faces and the second search cost a frame: the emotion pipeline in process, today's
settings against alignment and the retry switched off, in alternating rounds on the same frames (the
host's speed drifts; ratios within a round hold).

    python -m bench.align_cost [--rounds 5] [--frames 100]

Frames: a 640x480 JPEG with one face (samples.images.frame_jpeg), and the same size with no face (where
the second search runs). Writes reports/emotion/align_cost.{md,json}.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench import report
from samples.images import frame_jpeg
from services.emotion.pipeline import EmotionPipeline
from services.emotion.settings import CropSettings, DetectSettings, EmotionSettings

CONFIGS = {
    "shipped (align, retry)": EmotionSettings(threads=1, solo_threads=0),
    "before (no align, no retry)": EmotionSettings(
        threads=1, solo_threads=0, crop=CropSettings(align=False), detect=DetectSettings(frame_retry=0)
    ),
}


def empty_jpeg() -> bytes:
    """A 640x480 picture with no face: smooth noise, as a room with nobody in front of the camera."""
    rng = np.random.default_rng(0)
    small = rng.integers(60, 200, (30, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def timed(pipeline: EmotionPipeline, frame: bytes, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        pipeline.predict(frame)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--out", type=Path, default=report.REPORTS / "emotion")
    args = ap.parse_args()
    frames = {"one face": frame_jpeg(), "no face": empty_jpeg()}
    pipelines = {name: EmotionPipeline(s) for name, s in CONFIGS.items()}
    shipped, before = list(CONFIGS)
    faces = {name: len(pipelines[shipped].predict(f).faces) for name, f in frames.items()}
    p50: dict[str, dict[str, list[float]]] = {f: {c: [] for c in CONFIGS} for f in frames}
    for r in range(args.rounds):
        order = list(CONFIGS) if r % 2 == 0 else list(reversed(CONFIGS))
        for frame_name, frame in frames.items():
            for config in order:
                p50[frame_name][config].append(
                    statistics.median(timed(pipelines[config], frame, args.frames))
                )
    medians = {f: {c: statistics.median(v) for c, v in by.items()} for f, by in p50.items()}
    result = {
        "p50_ms": {
            f: {"faces found": faces[f], **by, "difference": by[shipped] - by[before]}
            for f, by in medians.items()
        },
        "rounds": args.rounds,
        "frames_per_round": args.frames,
        "rounds_p50_ms": p50,
    }
    report.write(
        args.out,
        "align_cost",
        result,
        title="Alignment and the second search: cost per frame",
        command=f"python -m bench.align_cost --rounds {args.rounds} --frames {args.frames}",
        notes=[
            "The emotion pipeline in process on one thread (decode, detect, crop, classify), 640x480 JPEG "
            "frames, configurations in alternating order each round; p50 of each round, then the median of "
            f"the rounds (ms); difference: {shipped} less {before}."
        ],
    )


if __name__ == "__main__":
    main()
