"""The three FER2013 formats load into the same arrays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from services.common.contracts import EMOTIONS
from training.emotion import data as fer

SPLIT_TO_USAGE = {v: k for k, v in fer.USAGE_TO_SPLIT.items()}


def test_csv_and_folders_match_npz(synthetic_fer: Path, tmp_path: Path) -> None:
    ref = fer.load(synthetic_fer)
    df = pd.DataFrame(
        {
            "emotion": ref.labels,
            "pixels": [" ".join(map(str, img.ravel())) for img in ref.images],
            "Usage": [SPLIT_TO_USAGE[s] for s in ref.split],
        }
    )
    csv = tmp_path / "fer2013.csv"
    df.to_csv(csv, index=False)
    from_csv = fer.load(csv)

    root = tmp_path / "folders"
    for i, (img, label, split) in enumerate(zip(ref.images, ref.labels, ref.split, strict=True)):
        d = root / split / EMOTIONS[label]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{i:05d}.png"), img)
    from_folders = fer.load(root)

    for got in (from_csv, from_folders):
        for split in ("train", "val", "test"):
            a, b = ref.subset(split), got.subset(split)
            order_a = np.lexsort((a.labels, a.images.reshape(len(a), -1).sum(1)))
            order_b = np.lexsort((b.labels, b.images.reshape(len(b), -1).sum(1)))
            np.testing.assert_array_equal(a.images[order_a], b.images[order_b])
            np.testing.assert_array_equal(a.labels[order_a], b.labels[order_b])


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"emotion": [0], "pixels": ["0 0 0 0"]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="Usage"):
        fer.load(bad)
    with pytest.raises(ValueError, match="expected"):
        fer.load(tmp_path / "faces.txt")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        fer.load(tmp_path / "empty")
