"""Latency and throughput of the emotion service's POST /predict, against a real uvicorn process.

    .venv/bin/python -m bench.emotion_bench [--requests 200] [--concurrency 1 8]

The frame is a 640x480 JPEG with one face, made from scikit-image's astronaut photo. For each
concurrency it reports p50/p99 latency as the client sees it, requests per second, and the server's
own split into decode / detect / classify (the response's timings_ms), for each EMOTION_THREADS
value given. "full frame" requests are raw JPEG bodies; "tracked" requests are multipart with the
`boxes` field (the face box of a full-frame answer, as a live client sends its previous frame's
boxes), so only the region around the face is searched. It also times the emotion model alone on
one core (ONNX Runtime, intra_op_num_threads=1) per face.
Writes reports/emotion_bench.json and reports/emotion_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
from PIL import Image
from skimage import data

from services.emotion.classifier import EmotionClassifier
from services.emotion.pipeline import EmotionPipeline
from services.emotion.settings import EmotionSettings
from tests.procs import service

REPO = Path(__file__).resolve().parents[1]
STAGES = ("decode", "detect", "classify")


def frame_jpeg() -> bytes:
    """640x480, one face: the astronaut photo's top 384 rows, widened to 4:3."""
    rgb = cv2.resize(data.astronaut()[:384], (640, 480), interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


async def load(url: str, body: bytes, requests: int, concurrency: int,
               boxes: str | None = None) -> dict[str, object]:
    latencies: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    faces: list[int] = []
    regions: list[bool] = []
    errors = 0
    queue = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def post() -> httpx.Response:
            if boxes is None:
                return await client.post("/predict", content=body, headers={"Content-Type": "image/jpeg"})
            return await client.post("/predict", files={"image": ("frame.jpg", body, "image/jpeg")},
                                     data={"boxes": boxes})

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                start = time.perf_counter()
                r = await post()
                elapsed = time.perf_counter() - start
                if r.status_code != 200:
                    errors += 1
                    continue
                latencies.append(elapsed * 1000)
                answer = r.json()
                faces.append(len(answer["faces"]))
                regions.append(answer.get("region") is not None)
                for s in STAGES:
                    stages[s].append(answer["timings_ms"][s])

        for _ in range(min(10, requests)):  # warm-up, not counted
            await post()
        wall = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - wall

    lat = np.array(latencies)
    return {
        "mode": "full frame" if boxes is None else "tracked", "concurrency": concurrency,
        "requests": requests, "errors": errors,
        "answered_from_region": int(sum(regions)),
        "faces_per_frame": float(np.mean(faces)) if faces else 0.0,
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                       "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())},
        "requests_per_s": len(latencies) / wall,
        "server_ms_p50": {s: float(np.median(v)) for s, v in stages.items()},
        "server_ms_mean": {s: float(np.mean(v)) for s, v in stages.items()},
    }


def first_boxes(body: bytes) -> str:
    """The boxes a live client would send with the next frame: this frame's full-frame answer."""
    answer = EmotionPipeline(EmotionSettings(threads=1)).predict(body)
    return json.dumps([face.box.model_dump() for face in answer.faces])


def pipeline_cpu(body: bytes, max_side: int, boxes: str | None = None,
                 repeats: int = 100) -> dict[str, float]:
    """The service's pipeline in this process: wall and CPU time (thread_time) per frame. With one
    ONNX Runtime thread all work runs in the calling thread, so CPU time is what a frame costs
    on an idle core, even while other processes load the machine."""
    pipeline = EmotionPipeline(EmotionSettings(threads=1, detect_max_side=max_side))
    hint = None if boxes is None else [tuple(b.values()) for b in json.loads(boxes)]
    for _ in range(10):
        pipeline.predict(body, hint=hint)
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.thread_time()
        pipeline.predict(body, hint=hint)
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return {"wall_ms_p50": float(np.median(wall)), "cpu_ms_p50": float(np.median(cpu)),
            "cpu_ms_min": float(np.min(cpu))}


def model_per_face(repeats: int = 300) -> dict[str, float]:
    """The emotion CNN alone, one core: batch of 1 and per face in a batch of 8."""
    settings = EmotionSettings()
    clf = EmotionClassifier(settings.model_path, settings.card_file, threads=1)
    h, w = clf.size
    rng = np.random.default_rng(0)
    out = {}
    for batch in (1, 8):
        crops = rng.uniform(0, 255, (batch, h, w)).astype(np.float32)
        for _ in range(20):
            clf.logits(crops)
        times = []
        for _ in range(repeats // batch + 20):
            start = time.perf_counter()
            clf.logits(crops)
            times.append((time.perf_counter() - start) * 1000 / batch)
        out[f"batch{batch}_ms_per_face_p50"] = float(np.median(times))
    out["model"] = clf.name  # type: ignore[assignment]
    return out


def markdown(result: dict) -> str:
    lines = [
        "# Emotion service benchmark",
        "",
        "Command: `.venv/bin/python -m bench.emotion_bench` (writes this file and emotion_bench.json).",
        f"Frame: 640x480 JPEG ({result['frame_bytes']} bytes), one face (scikit-image astronaut). "
        f"Server: one uvicorn process per EMOTION_THREADS value, detector input <= "
        f"{result['detect_max_side']} px for the full frame. Model: {result['model']['model']}.",
        "**full frame**: raw JPEG body, the whole frame searched. **tracked**: multipart with the "
        f"`boxes` field `{result['boxes']}` (the full-frame answer's box, as a live client sends its "
        "previous frame's boxes): only the region around it is searched.",
        f"Machine: {result['machine']}. {result['note']}",
        "",
        "| mode | EMOTION_THREADS | concurrency | requests | errors | answered from the region | "
        "p50 ms | p90 ms | p99 ms | req/s | server decode / detect / classify ms (p50) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lat, st = r["latency_ms"], r["server_ms_p50"]
        lines.append(
            f"| {r['mode']} | {r['threads']} | {r['concurrency']} | {r['requests']} | {r['errors']} | "
            f"{r['answered_from_region']} | {lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} | "
            f"{r['requests_per_s']:.1f} | {st['decode']:.1f} / {st['detect']:.1f} / {st['classify']:.1f} |")
    m = result["model"]
    lines += ["", f"Emotion model alone, one core (intra_op_num_threads=1): "
              f"{m['batch1_ms_per_face_p50']:.2f} ms per face at batch 1, "
              f"{m['batch8_ms_per_face_p50']:.2f} ms per face in a batch of 8 (p50).",
              "",
              "The pipeline in-process, one thread (CPU time = thread_time, far less sensitive to other load "
              "than wall time):",
              "", "| mode | detector input <= px | wall ms p50 | CPU ms p50 | CPU ms min |",
              "|---|---|---|---|---|"]
    lines += [f"| {name.split(' <=')[0]} | {name.split('<=')[1]} | {r['wall_ms_p50']:.1f} | "
              f"{r['cpu_ms_p50']:.1f} | {r['cpu_ms_min']:.1f} |"
              for name, r in result["in_process"].items()]
    first = {r["mode"]: r for r in result["runs"] if r["concurrency"] == 1
             and r["threads"] == result["threads"][0]}
    lines += [""] + [
        f"Target: p50 <= 15 ms at concurrency 1 -> {mode}: "
        f"{'met' if r['latency_ms']['p50'] <= 15 else 'NOT met'} in this run "
        f"(p50 {r['latency_ms']['p50']:.1f} ms)." for mode, r in first.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, nargs="+", default=[EmotionSettings().threads, 2],
                        help="EMOTION_THREADS values to compare; the first is the service default")
    parser.add_argument("--detect-max-side", type=int, default=EmotionSettings().detect_max_side)
    parser.add_argument("--note", default="", help="context for the report, e.g. machine load")
    parser.add_argument("--out", type=Path, default=REPO / "reports")
    args = parser.parse_args(argv)
    body = frame_jpeg()
    boxes = first_boxes(body)
    runs = []
    for threads in args.threads:
        env = {"EMOTION_THREADS": str(threads), "EMOTION_DETECT_MAX_SIDE": str(args.detect_max_side)}
        with service("services.emotion.app:app", env=env, timeout=180) as url:
            for mode_boxes in (None, boxes):
                for c in args.concurrency:
                    run = asyncio.run(load(url, body, args.requests, c, mode_boxes))
                    runs.append({"threads": threads, **run})
    load_avg = os.getloadavg()
    in_process = {f"full frame <={side}": pipeline_cpu(body, side)
                  for side in sorted({320, 480, args.detect_max_side})}
    in_process[f"tracked <={EmotionSettings().track_max_side}"] = pipeline_cpu(
        body, args.detect_max_side, boxes)
    result = {
        "frame_bytes": len(body), "threads": args.threads, "boxes": boxes,
        "detect_max_side": args.detect_max_side,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"load average {load_avg[0]:.1f} at the end of the HTTP runs",
        "note": args.note, "runs": runs, "model": model_per_face(), "in_process": in_process,
    }
    args.out.mkdir(exist_ok=True)
    (args.out / "emotion_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / "emotion_bench.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
