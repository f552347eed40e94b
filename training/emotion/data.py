"""FER2013 loaders. Three on-disk formats give the same arrays:

- our `fer2013.npz` (images, labels, split, optional FER+ votes),
- Kaggle's `fer2013.csv` (columns emotion, pixels as space-separated text, Usage),
- a folder layout `<split>/<class>/*.{jpg,png}` with split folders train, val (or PublicTest) and
  test (or PrivateTest).

Splits: train for fitting, val (PublicTest) for model selection, test (PrivateTest) for reporting only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from services.common.contracts import EMOTIONS

# FER+ vote columns (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF)
# as FER2013 class indices; contempt has no FER2013 class.
FERPLUS_TO_FER = {0: 6, 1: 3, 2: 5, 3: 4, 4: 0, 5: 1, 6: 2}
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FOLDER_TO_SPLIT = {"train": "train", "val": "val", "publictest": "val", "test": "test", "privatetest": "test"}


@dataclass
class FerData:
    images: np.ndarray  # uint8 [N, 48, 48]
    labels: np.ndarray  # int64 [N], index into EMOTIONS
    split: np.ndarray  # str [N]: train / val / test
    ferplus_votes: np.ndarray | None = None  # int64 [N, 10], FER+ column order

    def subset(self, name: str) -> FerData:
        m = self.split == name
        votes = None if self.ferplus_votes is None else self.ferplus_votes[m]
        return FerData(self.images[m], self.labels[m], self.split[m], votes)

    def __len__(self) -> int:
        return len(self.labels)


def ferplus_shares(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER+ vote shares over the seven FER2013 classes, and a mask of rows where they mean something
    (fewer than 5 "not a face" votes and at least one vote for a FER2013 class)."""
    shares = np.zeros((len(votes), len(EMOTIONS)), np.float32)
    for src, dst in FERPLUS_TO_FER.items():
        shares[:, dst] = votes[:, src]
    total = shares.sum(1)
    usable = (votes[:, 9] < 5) & (total > 0)
    shares[usable] /= total[usable, None]
    return shares, usable


def load_npz(path: Path) -> FerData:
    z = np.load(path)
    names = tuple(str(c) for c in z["class_names"])
    if names != EMOTIONS:
        raise ValueError(f"{path}: class_names {names} differ from {EMOTIONS}")
    votes = z["ferplus_votes"] if "ferplus_votes" in z.files else None
    return FerData(z["images"].astype(np.uint8), z["labels"].astype(np.int64), z["split"].astype(str), votes)


def load_csv(path: Path) -> FerData:
    import pandas as pd

    df = pd.read_csv(path)
    missing = {"emotion", "pixels", "Usage"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    pixels = np.stack([np.asarray(p.split(), dtype=np.uint8) for p in df["pixels"]])
    side = int(round(np.sqrt(pixels.shape[1])))
    images = pixels.reshape(-1, side, side)
    unknown = set(df["Usage"]) - set(USAGE_TO_SPLIT)
    if unknown:
        raise ValueError(f"{path}: unknown Usage value(s) {sorted(unknown)}")
    split = df["Usage"].map(USAGE_TO_SPLIT).to_numpy(dtype=str)
    return FerData(images, df["emotion"].to_numpy(np.int64), split)


def load_folders(root: Path, size: int = 48) -> FerData:
    images, labels, split = [], [], []
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        name = FOLDER_TO_SPLIT.get(split_dir.name.lower())
        if name is None:
            continue
        for label, emotion in enumerate(EMOTIONS):
            for f in sorted((split_dir / emotion).glob("*")):
                if f.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                    continue
                img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    raise ValueError(f"{f}: not a readable image")
                if img.shape != (size, size):
                    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
                images.append(img)
                labels.append(label)
                split.append(name)
    if not images:
        raise ValueError(f"{root}: no images found under <split>/<class>/")
    return FerData(np.stack(images), np.asarray(labels, np.int64), np.asarray(split))


def load(path: str | Path) -> FerData:
    """Loads any supported format, chosen by what `path` is."""
    path = Path(path)
    if path.is_dir():
        npz = path / "fer2013.npz"
        return load_npz(npz) if npz.exists() else load_folders(path)
    if path.suffix == ".npz":
        return load_npz(path)
    if path.suffix == ".csv":
        return load_csv(path)
    raise ValueError(f"{path}: expected a .npz, a .csv or a folder")
