"""The model the service runs, measured on real data (marker `data`): FER2013 test accuracy no lower
than its card claims (less one point of slack for another CPU's arithmetic), and faces that fill the
whole picture still found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.emotion.classifier import EmotionClassifier
from services.emotion.pipeline import EmotionPipeline
from services.emotion.settings import EmotionSettings
from training.emotion import data as fer
from training.emotion.real_faces import NO_FACE, read, run, tight

pytestmark = pytest.mark.data


def test_the_served_model_reads_fer2013_test_as_well_as_its_card_claims(data_dir: Path) -> None:
    settings = EmotionSettings()
    claimed = json.loads(settings.card_file.read_text())["metrics"]["test_single"]
    test = fer.load(data_dir / "fer2013" / "fer2013.npz").subset("test")
    clf = EmotionClassifier(settings.model_path, settings.card_file)
    logits = np.concatenate(
        [clf.logits(test.images[i : i + 512].astype(np.float32)) for i in range(0, len(test), 512)]
    )
    accuracy = float((logits.argmax(1) == test.labels).mean())
    assert accuracy >= claimed - 0.01, f"FER2013 test {accuracy:.2%}, the card claims {claimed:.2%}"


def test_faces_that_fill_the_picture_are_found(data_dir: Path) -> None:
    images, _ = read(data_dir / "faces_dev" / "muxspace_dev.npz")
    sample = images[::4]  # a quarter keeps the test short; the report runs them all
    without = run(EmotionPipeline(EmotionSettings(frame_retry=0)), sample, crop=0.8)
    with_retry = run(EmotionPipeline(EmotionSettings()), sample, crop=0.8)
    missed = int((without == NO_FACE).sum())
    assert missed >= 1, "the tight crops no longer test the retry: every face was found at once"
    still = int((with_retry == NO_FACE).sum())
    assert still == 0, f"{still} tight faces still missed"
    assert tight(images[0], 0.8).shape == (193, 162)
