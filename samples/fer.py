"""A FER2013-shaped dataset for training runs: faces whose class is drawn into the pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.common.contracts import EMOTIONS


def write_npz(path: Path) -> Path:
    """420 faces (300 train, 60 val, 60 test) in our fer2013.npz layout, each class a bright bar at its
    own row, so a CNN can learn them in an epoch."""
    rng = np.random.default_rng(0)
    n = 420
    labels = np.arange(n) % 7
    images = rng.integers(0, 60, (n, 48, 48)).astype(np.uint8)
    for i, c in enumerate(labels):  # one bright bar per class, at a class-specific row
        images[i, 4 + 6 * c : 8 + 6 * c, 8:40] = 220
    split = np.array(["train"] * 300 + ["val"] * 60 + ["test"] * 60)
    votes = np.zeros((n, 10), np.int64)
    votes[:, 0] = 10  # FER+ says "neutral" for every row
    np.savez(
        path,
        images=images,
        labels=labels.astype(np.int64),
        split=split,
        class_names=np.array(EMOTIONS),
        ferplus_votes=votes,
    )
    return path
