"""The on-device mode in headless Chromium on this machine: per-frame time of frontend/ondevice.js
(detect + classify, single-threaded WebAssembly with SIMD) on a 640x480 frame with one face, and what a
first and a repeat visit download (bytes on the wire, compressed as served).

    python -m bench.ondevice [--frames N] [--out DIR]

The services run as processes (services.launch.stack, synthetic catalog); the runtime is the one the
gateway installed (GATEWAY_RUNTIME_DIR). Frames: `tracked` is the page's steady state (each frame
carries the previous answer's boxes, so only the region around the face is searched, as the server
does); `whole` searches the whole frame every time. The first frames warm the WebAssembly up (the
browser compiles hot functions with its optimising compiler after a while) and are not counted.
`native`: the same two graphs through ONNX Runtime in the bench's process on one thread (as the emotion
service runs them, the JPEG decode aside), in alternating rounds with the browser so that both see the
same moments of a shared machine; browser_over_native_p50 is the ratio. Bytes: Chromium's own count
of each response's encoded body (Network.loadingFinished), for a fresh
browser profile (first visit) and again on the same profile after a reload (repeat visit: the immutable
files come from its cache).
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from playwright.sync_api import sync_playwright

from bench import report
from samples.images import frame_jpeg
from samples.music import recommender_env
from services.emotion.imaging import Limits, decode
from services.emotion.pipeline import EmotionPipeline
from services.emotion.settings import EmotionSettings
from services.launch import stack

CHROMIUM = "/usr/bin/chromium"
TARGET_P50_MS = 30.0
TARGET_FIRST_VISIT_MB = 8.0
INSTALL_TIMEOUT_S = 900
ROUNDS = 4

LOAD = """async ([url]) => {
  const { loadEngine } = await import('/ondevice.js');
  const t0 = performance.now();
  window.engine = await loadEngine();
  const loadMs = performance.now() - t0;
  const img = new Image();
  img.src = url;
  await img.decode();
  window.bitmap = await createImageBitmap(img);
  // A module using a SIMD instruction (v128.const): valid only where WebAssembly SIMD is.
  const simd = WebAssembly.validate(new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15,
    253, 98, 11]));
  return { loadMs, crossOriginIsolated: self.crossOriginIsolated, simd };
}"""

# `frames` analyses of the frame; tracked: each with the previous answer's boxes. Per frame: the total
# and the engine's own stage timings (decode = the picture to grey levels).
RUN = """async ([frames, tracked]) => {
  let boxes;
  const out = { times: [], decode: [], detect: [], classify: [] };
  for (let i = 0; i < frames; i++) {
    const t = performance.now();
    const answer = await window.engine.analyze(window.bitmap, { boxes });
    out.times.push(performance.now() - t);
    if (answer.faces.length !== 1) throw new Error(`frame ${i}: ${answer.faces.length} faces`);
    if (tracked) boxes = answer.faces.map((f) => f.box);
    for (const k of ["decode", "detect", "classify"]) out[k].push(answer.timings_ms[k]);
  }
  return out;
}"""


def native_run(pipeline: EmotionPipeline, grey: np.ndarray, frames: int, tracked: bool) -> dict[str, list]:
    """The same graphs through ONNX Runtime in this process, one thread, as the emotion service runs
    them: detect (with the previous boxes when tracked) and classify, on the grey frame."""
    out: dict[str, list] = {"times": [], "detect": [], "classify": []}
    hint = None
    for _ in range(frames):
        t0 = time.perf_counter()
        found, _ = pipeline.boxes(grey, True, hint)
        t1 = time.perf_counter()
        pipeline.classifier(grey, pipeline.squares(found, True))
        t2 = time.perf_counter()
        if len(found) != 1:
            raise RuntimeError(f"{len(found)} faces")
        hint = [f.box for f in found] if tracked else None
        out["times"].append((t2 - t0) * 1000)
        out["detect"].append((t1 - t0) * 1000)
        out["classify"].append((t2 - t1) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(percentile(times, 0.95), 2),
        "mean_ms": round(statistics.fmean(times), 2),
    }


def visit_bytes(browser_type: Any, gateway: str, profile: Path) -> dict[str, Any]:
    """Bytes on the wire for a first visit to the engine (fresh profile), then a repeat visit."""
    context = browser_type.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
    )
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        urls: dict[str, str] = {}
        counted: dict[str, dict[str, Any]] = {}

        def on_response(event: dict[str, Any]) -> None:
            response = event["response"]
            urls[event["requestId"]] = response["url"]
            counted[event["requestId"]] = {
                "url": response["url"].removeprefix(gateway),
                "status": response["status"],
                "from_cache": response.get("fromDiskCache", False) or response.get("fromMemoryCache", False),
                "encoding": {k.lower(): v for k, v in response["headers"].items()}.get("content-encoding"),
                "bytes": 0,
            }

        def on_finished(event: dict[str, Any]) -> None:
            if event["requestId"] in counted:
                counted[event["requestId"]]["bytes"] = int(event["encodedDataLength"])

        cdp.on("Network.responseReceived", on_response)
        cdp.on("Network.loadingFinished", on_finished)
        load = "async () => (await (await import('/ondevice.js')).loadEngine()).model"
        visits = {}
        for visit in ("first", "repeat"):
            counted.clear()
            page.goto(f"{gateway}/api/emotions")
            page.evaluate(load)
            page.wait_for_timeout(500)
            # The runtime and the graphs; the manifest (/api/ondevice, a few hundred bytes, asked each
            # visit to learn the current model) is counted apart.
            files = [c for c in counted.values() if c["url"].startswith("/ondevice/")]
            manifest = [c for c in counted.values() if c["url"] == "/api/ondevice"]
            visits[visit] = {
                "files": files,
                "bytes": sum(c["bytes"] for c in files),
                "manifest_bytes": sum(c["bytes"] for c in manifest),
            }
        return visits
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=200, help="frames timed per mode")
    ap.add_argument("--warmup", type=int, default=100, help="frames run first, not timed")
    ap.add_argument("--out", type=Path, default=report.REPORTS / "ondevice")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    frame = frame_jpeg()
    grey = decode(frame, Limits(len(frame), 10**8), grey=True)
    native = EmotionPipeline(EmotionSettings(threads=1, solo_threads=0))
    url = "data:image/jpeg;base64," + base64.b64encode(frame).decode()
    with tempfile.TemporaryDirectory() as tmp, stack({"recommender": recommender_env(Path(tmp))}) as s:
        deadline = time.monotonic() + INSTALL_TIMEOUT_S
        while not (info := httpx.get(f"{s.gateway}/api/ondevice", timeout=10).json())["available"]:
            if time.monotonic() > deadline:
                raise SystemExit(f"on-device mode unavailable: {info['reason']}")
            time.sleep(1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            page = browser.new_page()
            page.set_default_timeout(600_000)
            page.goto(f"{s.gateway}/api/emotions")
            loaded = page.evaluate(LOAD, [url])
            for tracked in (False, True):  # warm-up, not counted
                page.evaluate(RUN, [args.warmup, tracked])
                native_run(native, grey, args.warmup, tracked)
            measured: dict[str, dict[str, list]] = {}
            per_round = max(1, args.frames // ROUNDS)
            # Alternating rounds: the browser and ONNX Runtime see the same moments of a shared machine.
            for _ in range(ROUNDS):
                for tracked in (True, False):
                    mode = "tracked" if tracked else "whole"
                    for side, got in (
                        ("browser", page.evaluate(RUN, [per_round, tracked])),
                        ("native", native_run(native, grey, per_round, tracked)),
                    ):
                        into = measured.setdefault(f"{side} {mode}", {})
                        for k, v in got.items():
                            into.setdefault(k, []).extend(v)
            version = browser.version
            browser.close()
            visits = visit_bytes(p.chromium, s.gateway, Path(tmp) / "profile")
    load_after = os.getloadavg()
    first_mb = visits["first"]["bytes"] / 1e6
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after (shared with other work: timings are noisy)",
        "browser": f"Chromium {version}, headless, onnxruntime-web {info['runtime']['version']}, "
        f"WebAssembly SIMD {'yes' if loaded['simd'] else 'no'}, one thread "
        f"(crossOriginIsolated {loaded['crossOriginIsolated']})",
        "model": info["model"],
        "engine_load_ms": round(loaded["loadMs"], 1),
        "per_frame": {
            name: {
                **summary(m["times"]),
                **{f"{k}_p50_ms": round(statistics.median(v), 2) for k, v in m.items() if k != "times"},
                "frames": len(m["times"]),
            }
            for name, m in measured.items()
        },
        "browser_over_native_p50": {
            mode: round(
                statistics.median(measured[f"browser {mode}"]["times"])
                / statistics.median(measured[f"native {mode}"]["times"]),
                2,
            )
            for mode in ("tracked", "whole")
        },
        "target_p50_ms": TARGET_P50_MS,
        "tracked_p50_met": statistics.median(measured["browser tracked"]["times"]) <= TARGET_P50_MS,
        "download": {
            "first_visit_mb": round(first_mb, 3),
            "repeat_visit_bytes": visits["repeat"]["bytes"],
            "manifest_bytes_each_visit": visits["repeat"]["manifest_bytes"],
            "target_first_visit_mb": TARGET_FIRST_VISIT_MB,
            "first_visit_met": first_mb <= TARGET_FIRST_VISIT_MB,
        },
        "first_visit_files": visits["first"]["files"],
        "repeat_visit_files": visits["repeat"]["files"],
    }
    report.write(
        args.out,
        "browser",
        result,
        title="On-device mode in the browser: per-frame time and download",
        command="python -m bench.ondevice",
        notes=[(__doc__ or "").split("\n\n")[2].strip().replace("\n", " ")],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
