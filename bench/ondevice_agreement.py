"""Agreement of the two runtimes: every face of ../shared/data/photos and 400 faces of faces_dev through
the page's engine (frontend/ondevice.js in headless Chromium, onnxruntime-web) and through the emotion
service's POST /predict (ONNX Runtime), the same picture to both.

    MOODTUNES_DATA=../shared/data python -m bench.ondevice_agreement [--out DIR]

Reports per picture set: faces found by each, faces matched (box IoU >= 0.9, greedy by IoU), the share
of matched faces with the same top emotion, the smallest IoU, and the mean and largest difference of a
probability. Photos go as their JPEG bytes (each side decodes them: Pillow's luma plane on the server,
the browser's RGB turned grey by Pillow's formula in ondevice.js); faces_dev's grey arrays as PNG (lossless).
tests/e2e/test_ondevice_agreement.py runs the same comparison and fails when the figures drift.
"""

from __future__ import annotations

import argparse
import base64
import io
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from bench import report
from samples.music import recommender_env
from services.common.paths import data_dir
from services.launch import stack

CHROMIUM = "/usr/bin/chromium"
FACES_DEV = 400
MIN_IOU = 0.9
MIN_SAME_EMOTION = 0.98
INSTALL_TIMEOUT_S = 900

LOAD = "async () => { window.engine = await (await import('/ondevice.js')).loadEngine(); }"
ANALYZE = """async ([url]) => {
  const img = new Image();
  img.src = url;
  await img.decode();
  return await window.engine.analyze(await createImageBitmap(img));
}"""


def pictures(data: Path, faces_dev: int = FACES_DEV) -> Iterator[tuple[str, str, bytes, str]]:
    """(set, name, bytes, media type) of every photo and of the first faces_dev faces of faces_dev."""
    for path in sorted((data / "photos").glob("*.jpg")):
        yield "photos", path.name, path.read_bytes(), "image/jpeg"
    npz = np.load(data / "faces_dev" / "muxspace_dev.npz")
    for i in range(min(faces_dev, len(npz["images"]))):
        png = io.BytesIO()
        Image.fromarray(npz["images"][i]).save(png, "PNG")
        yield "faces_dev", str(npz["filename"][i]), png.getvalue(), "image/png"


def iou(a: dict[str, int], b: dict[str, int]) -> float:
    x0, y0 = max(a["x"], b["x"]), max(a["y"], b["y"])
    x1, y1 = min(a["x"] + a["w"], b["x"] + b["w"]), min(a["y"] + a["h"], b["y"] + b["h"])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a["w"] * a["h"] + b["w"] * b["h"] - inter
    return inter / union if union else 0.0


def matched(browser: list[dict], server: list[dict]) -> list[tuple[dict, dict, float]]:
    """Pairs of faces, greedy by IoU (each face in one pair at most), with their IoU."""
    pairs = sorted(
        ((iou(b["box"], s["box"]), i, j) for i, b in enumerate(browser) for j, s in enumerate(server)),
        reverse=True,
    )
    used_b: set[int] = set()
    used_s: set[int] = set()
    out = []
    for score, i, j in pairs:
        if score > 0 and i not in used_b and j not in used_s:
            used_b.add(i)
            used_s.add(j)
            out.append((browser[i], server[j], score))
    return out


def compare(page: Page, gateway: str, items: list[tuple[str, str, bytes, str]]) -> dict[str, Any]:
    """Every picture through both runtimes; per-set figures and the pictures where they differ."""
    page.goto(f"{gateway}/api/emotions")  # a gateway page: its content policy applies
    page.evaluate(LOAD)
    rows: dict[str, dict[str, Any]] = {}
    differ = []
    with httpx.Client(timeout=60) as client:
        for kind, name, data, media in items:
            url = f"data:{media};base64," + base64.b64encode(data).decode()
            browser = page.evaluate(ANALYZE, [url])["faces"]
            answer = client.post(f"{gateway}/predict", files={"image": (name, data, media)})
            answer.raise_for_status()
            server = answer.json()["faces"]
            row = rows.setdefault(
                kind,
                {"pictures": 0, "faces_browser": 0, "faces_server": 0, "ious": [], "same": 0, "diffs": []},
            )
            row["pictures"] += 1
            row["faces_browser"] += len(browser)
            row["faces_server"] += len(server)
            pairs = matched(browser, server)
            for b, s, score in pairs:
                row["ious"].append(score)
                row["same"] += b["emotion"] == s["emotion"]
                row["diffs"] += [abs(b["probabilities"][e] - p) for e, p in s["probabilities"].items()]
                if b["emotion"] != s["emotion"] or score < MIN_IOU:
                    differ.append(
                        {
                            "picture": f"{kind}/{name}",
                            "iou": round(score, 3),
                            "browser": f"{b['emotion']} {b['confidence']:.2f}",
                            "server": f"{s['emotion']} {s['confidence']:.2f}",
                        }
                    )
            if len(browser) != len(server) or len(pairs) != len(server):
                differ.append({"picture": f"{kind}/{name}", "faces": f"{len(browser)} vs {len(server)}"})
    sets = {}
    for kind, row in rows.items():
        n = len(row["ious"])
        sets[kind] = {
            "pictures": row["pictures"],
            "faces_server": row["faces_server"],
            "faces_browser": row["faces_browser"],
            "faces_matched": n,
            "same_top_emotion": round(row["same"] / n, 4) if n else None,
            "min_iou": round(min(row["ious"]), 4) if n else None,
            "matched_iou_below_0_9": sum(v < MIN_IOU for v in row["ious"]),
            "mean_probability_diff": round(float(np.mean(row["diffs"])), 5) if n else None,
            "max_probability_diff": round(float(np.max(row["diffs"])), 5) if n else None,
        }
    faces = sum(r["faces_matched"] for r in sets.values())
    same = sum(rows[k]["same"] for k in rows)
    return {
        "sets": sets,
        "all": {
            "faces_matched": faces,
            "same_top_emotion": round(same / faces, 4) if faces else None,
            "target_same_top_emotion": MIN_SAME_EMOTION,
            "min_iou": min((s["min_iou"] for s in sets.values() if s["min_iou"] is not None), default=None),
            "target_min_iou": MIN_IOU,
        },
        "differences": differ,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces-dev", type=int, default=FACES_DEV)
    ap.add_argument("--out", type=Path, default=report.REPORTS / "ondevice")
    args = ap.parse_args(argv)
    data = data_dir()
    if not (data / "photos").is_dir():
        raise SystemExit(f"no data at {data}: set MOODTUNES_DATA to ../shared/data")
    items = list(pictures(data, args.faces_dev))
    with tempfile.TemporaryDirectory() as tmp, stack({"recommender": recommender_env(Path(tmp))}) as s:
        deadline = time.monotonic() + INSTALL_TIMEOUT_S
        while not (info := httpx.get(f"{s.gateway}/api/ondevice", timeout=10).json())["available"]:
            if time.monotonic() > deadline:
                raise SystemExit(f"on-device mode unavailable: {info['reason']}")
            time.sleep(1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            result = compare(browser.new_page(), s.gateway, items)
            version = browser.version
            browser.close()
    result = {
        "model": info["model"],
        "runtimes": f"ONNX Runtime (emotion service) vs onnxruntime-web {info['runtime']['version']} "
        f"in Chromium {version}",
        **result,
    }
    report.write(
        args.out,
        "agreement",
        result,
        title="On-device and server pipelines: the same faces, emotions and probabilities",
        command="MOODTUNES_DATA=../shared/data python -m bench.ondevice_agreement",
        notes=[(__doc__ or "").split("\n\n")[2].strip().replace("\n", " ")],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
