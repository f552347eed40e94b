"""frontend/ondevice.js in headless Chromium, under the gateway's content security policy: it loads the
runtime and the emotion service's graphs from the gateway, and answers what /predict answers for the
same picture (the same faces, emotions and probabilities), with and without the tracking hint."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page

from samples.images import astronaut
from services.launch import START_TIMEOUT_S

pytestmark = [pytest.mark.browser, pytest.mark.timeout(3 * START_TIMEOUT_S + 600)]

# The first start of a fresh clone downloads the runtime (about 35 MB) and compresses it once.
INSTALL_TIMEOUT_S = 600

ANALYZE = """async ([url, boxes]) => {
  const { loadEngine } = await import('/ondevice.js');
  const engine = await loadEngine();
  const img = new Image();
  img.src = url;
  await img.decode();
  const bitmap = await createImageBitmap(img);
  return { model: engine.model, answer: await engine.analyze(bitmap, { boxes: boxes ?? undefined }) };
}"""


def ondevice_ready(gateway_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    while True:
        info = httpx.get(f"{gateway_url}/api/ondevice", timeout=10).json()
        if info["available"] or time.monotonic() > deadline:
            assert info["available"], info["reason"]
            return info
        time.sleep(1)


def iou(a: dict[str, int], b: dict[str, int]) -> float:
    x0, y0 = max(a["x"], b["x"]), max(a["y"], b["y"])
    x1, y1 = min(a["x"] + a["w"], b["x"] + b["w"]), min(a["y"] + a["h"], b["y"] + b["h"])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a["w"] * a["h"] + b["w"] * b["h"] - inter)


def assert_same(browser: dict[str, Any], server: dict[str, Any]) -> None:
    assert (browser["width"], browser["height"]) == (server["width"], server["height"])
    assert browser["model"] == server["model"]
    assert browser["region"] == server["region"]
    assert len(browser["faces"]) == len(server["faces"]) >= 1
    for mine, theirs in zip(browser["faces"], server["faces"], strict=True):
        assert iou(mine["box"], theirs["box"]) >= 0.9, (mine["box"], theirs["box"])
        assert mine["emotion"] == theirs["emotion"]
        for emotion, p in theirs["probabilities"].items():
            assert mine["probabilities"][emotion] == pytest.approx(p, abs=0.02)


def test_the_engine_answers_what_predict_answers(page: Page, gateway_url: str) -> None:
    ondevice_ready(gateway_url)
    png = io.BytesIO()
    Image.fromarray(astronaut()).save(png, "PNG")
    url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{gateway_url}/api/emotions")  # any page of the gateway: its policy applies

    got = page.evaluate(ANALYZE, [url, None])
    server = httpx.post(f"{gateway_url}/predict", files={"image": ("a.png", png.getvalue(), "image/png")})
    assert server.status_code == 200, server.text
    assert_same(got["answer"], server.json())
    assert got["model"] == server.json()["model"]

    # The next frame with the faces' boxes: only the region around them is searched, on both sides.
    boxes = [f["box"] for f in server.json()["faces"]]
    tracked = page.evaluate(ANALYZE, [url, boxes])["answer"]
    hinted = httpx.post(
        f"{gateway_url}/predict",
        files={"image": ("a.png", png.getvalue(), "image/png")},
        data={"boxes": json.dumps(boxes)},
    )
    assert hinted.status_code == 200, hinted.text
    assert tracked["region"] is not None
    assert_same(tracked, hinted.json())
    assert not blocked, blocked


def test_loading_says_why_it_cannot_run(page: Page, gateway_url: str) -> None:
    ondevice_ready(gateway_url)
    page.goto(f"{gateway_url}/api/emotions")
    page.route("**/ondevice/models/detect.*", lambda route: route.fulfill(status=404, body="gone"))
    message = page.evaluate("""async () => {
      const { loadEngine } = await import('/ondevice.js');
      try { await loadEngine(); return null; } catch (err) { return err.message; }
    }""")
    assert message is not None and "404" in message and "/ondevice/models/detect." in message
