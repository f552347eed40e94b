from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.common.contracts import EMOTIONS


@pytest.fixture(scope="session")
def synthetic_fer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FER2013-shaped npz: 420 faces whose class is drawn into the pixels, so a CNN can learn it."""
    rng = np.random.default_rng(0)
    n = 420
    labels = np.arange(n) % 7
    images = rng.integers(0, 60, (n, 48, 48)).astype(np.uint8)
    for i, c in enumerate(labels):  # one bright bar per class, at a class-specific row
        images[i, 4 + 6 * c : 8 + 6 * c, 8:40] = 220
    split = np.array(["train"] * 300 + ["val"] * 60 + ["test"] * 60)
    votes = np.zeros((n, 10), np.int64)
    votes[:, 0] = 10  # FER+ says "neutral" for every row
    path = tmp_path_factory.mktemp("fer") / "fer2013.npz"
    np.savez(
        path,
        images=images,
        labels=labels.astype(np.int64),
        split=split,
        class_names=np.array(EMOTIONS),
        ferplus_votes=votes,
    )
    return path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Training tests share a 2-core machine with the services under test: one thread avoids
    oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
