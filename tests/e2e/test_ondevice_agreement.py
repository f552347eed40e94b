"""The two runtimes agree on real pictures: every photo of ../shared/data/photos and 400 faces of
faces_dev through the page's engine in headless Chromium and through /predict (bench.ondevice_agreement,
whose committed run is reports/ondevice/agreement.md). Fails when they drift apart: a face found by one
and not the other, a box with IoU under 0.9, the same top emotion on fewer than 98% of the faces, or a
probability further off than the committed run's largest difference plus 0.05."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page

from bench.ondevice_agreement import MIN_IOU, MIN_SAME_EMOTION, compare, pictures
from bench.report import REPORTS
from services.launch import START_TIMEOUT_S
from tests.e2e.test_ondevice_engine import ondevice_ready

pytestmark = [pytest.mark.data, pytest.mark.browser, pytest.mark.timeout(3 * START_TIMEOUT_S + 3600)]

COMMITTED = REPORTS / "ondevice" / "agreement.json"
PROBABILITY_MARGIN = 0.05


def test_the_browser_and_the_server_read_the_same_faces(page: Page, gateway_url: str, data_dir: Path) -> None:
    ondevice_ready(gateway_url)
    page.set_default_timeout(120_000)
    result = compare(page, gateway_url, list(pictures(data_dir)))
    committed = json.loads(COMMITTED.read_text())
    assert set(result["sets"]) == {"photos", "faces_dev"}
    for name, row in result["sets"].items():
        assert row["faces_browser"] == row["faces_server"] == row["faces_matched"], (
            name,
            result["differences"],
        )
        assert row["min_iou"] >= MIN_IOU, (name, result["differences"])
        largest = committed["sets"][name]["max_probability_diff"] + PROBABILITY_MARGIN
        assert row["max_probability_diff"] <= largest, (name, row)
    assert result["all"]["same_top_emotion"] >= MIN_SAME_EMOTION, result["differences"]
