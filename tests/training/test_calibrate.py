"""Temperature scaling: the fitted T is the one that generated the labels, and it lowers the ECE."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from training.emotion.calibrate import fit_temperature, reliability


def _sampled(temperature: float, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / temperature): calibrated at exactly that T."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (n, 7))
    p = softmax(z / temperature, axis=1)
    labels = (p.cumsum(1) > rng.uniform(size=(n, 1))).argmax(1)
    return z, labels


@pytest.mark.parametrize("true_t", [0.7, 1.0, 2.0])
def test_the_fitted_temperature_is_the_one_behind_the_labels(true_t: float) -> None:
    z, labels = _sampled(true_t)
    assert fit_temperature(z, labels) == pytest.approx(true_t, rel=0.08)


def test_calibration_lowers_the_expected_calibration_error() -> None:
    z, labels = _sampled(2.0)
    before, _ = reliability(softmax(z, axis=1), labels)  # overconfident by a factor of two
    after, bins = reliability(softmax(z / fit_temperature(z, labels), axis=1), labels)
    assert before > 0.1 and after < 0.02
    assert sum(b["n"] for b in bins) == len(labels)
