"""How the running service reads real faces: faces_dev (in-the-wild news photos) through the emotion
service's own pipeline (decode, detect, crop, classify), the largest face of each picture.

    python -m training.emotion.real_faces --variant shipped
    python -m training.emotion.real_faces --variant unaligned --set crop.align=false
    python -m training.emotion.real_faces --variant turned-unaligned --set crop.align=false --turn 20

Each picture is sent as a PNG, as a client would upload it. A picture where no face is found counts as
wrong. Every run is kept as a row of reports/emotion/real_faces.json under its --variant name, so
before/after rows sit side by side in reports/emotion/real_faces.md; a confusion heatmap is written for
each variant. --set overrides an EmotionSettings field (GROUP.FIELD for a group's) for this run only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix, recall_score  # noqa: E402

from services.common.contracts import EMOTIONS  # noqa: E402
from services.common.paths import data_dir  # noqa: E402
from services.emotion.pipeline import EmotionPipeline  # noqa: E402
from services.emotion.settings import EmotionSettings  # noqa: E402
from training.logs import configure, logger  # noqa: E402

log = logger("real_faces")

NO_FACE = len(EMOTIONS)  # the confusion matrix's extra column


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return npz["images"], npz["labels"].astype(np.int64)


def turned(image: np.ndarray, degrees: float) -> np.ndarray:
    """The picture turned about its centre (a head on one side), edges replicated."""
    h, w = image.shape
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def tight(image: np.ndarray, share: float) -> np.ndarray:
    """The central share of the picture (the face filling it, as an ID photo), at 162x193 px."""
    h, w = image.shape
    ch, cw = round(h * share), round(w * share * 162 / 193)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(image[y0 : y0 + ch, x0 : x0 + cw], (162, 193), interpolation=cv2.INTER_AREA)


def run(pipeline: EmotionPipeline, images: np.ndarray, turn: float = 0.0, crop: float = 0.0) -> np.ndarray:
    """The predicted class of each picture's largest face, NO_FACE where none was found. turn: every
    picture is first turned by that many degrees, alternately each way; crop: only the central share
    of each picture is sent (tight())."""
    out = np.empty(len(images), np.int64)
    for i, image in enumerate(images):
        if turn:
            image = turned(image, turn if i % 2 else -turn)
        if crop:
            image = tight(image, crop)
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise RuntimeError(f"cannot encode picture {i}")
        faces = pipeline.predict(png.tobytes()).faces
        out[i] = EMOTIONS.index(faces[0].emotion) if faces else NO_FACE
    return out


def photos(pipeline: EmotionPipeline, folder: Path) -> dict:
    """The labelled single-face photos (photos/labels.csv), each uploaded as it is: how many yield exactly
    one face, and what the largest face is read as, per label."""
    import pandas as pd

    rows = pd.read_csv(folder / "labels.csv")
    rows = rows[rows["n_faces_approx"] == 1]
    out: dict = {"photos": int(len(rows)), "exactly_one_face": 0, "read_as": {}}
    for row in rows.itertuples():
        faces = pipeline.predict((folder / str(row.filename)).read_bytes()).faces
        out["exactly_one_face"] += len(faces) == 1
        got = faces[0].emotion if faces else "no face"
        per = out["read_as"].setdefault(str(row.emotion), {})
        per[got] = per.get(got, 0) + 1
    return out


# The confusions users saw (issue 24): faces_dev (label, read as) pairs, counted in each row.
CONFUSIONS = (("surprise", "angry"), ("surprise", "fear"), ("neutral", "angry"), ("neutral", "sad"))


def confusions(result: dict) -> dict[str, str]:
    cm = np.array(result["confusion"])
    out = {}
    for label, read in CONFUSIONS:
        i, j = EMOTIONS.index(label), EMOTIONS.index(read)
        out[f"{label}->{read}"] = f"{cm[i, j]}/{cm[i].sum()}"
    return out


def scores(labels: np.ndarray, pred: np.ndarray) -> dict:
    recall = recall_score(labels, pred, labels=range(len(EMOTIONS)), average=None, zero_division=0)
    present = np.isin(range(len(EMOTIONS)), labels)
    return {
        "n": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        # Macro over the classes present here (faces_dev has few disgust and fear faces).
        "macro_recall": float(recall[present].mean()),
        "no_face": int((pred == NO_FACE).sum()),
        "per_class_recall": {e: float(r) for e, r, p in zip(EMOTIONS, recall, present, strict=True) if p},
        "confusion": confusion_matrix(labels, pred, labels=range(len(EMOTIONS) + 1)).tolist(),
    }


def heatmap(result: dict, path: Path, title: str) -> None:
    cm = np.array(result["confusion"])  # square: the "no face" row (a label) stays empty
    fig, ax = plt.subplots(figsize=(7.5, 6))
    ConfusionMatrixDisplay(cm, display_labels=[*EMOTIONS, "no face"]).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45
    )
    ax.set_ylabel("label")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(rows: dict[str, dict], source: str) -> str:
    lines = [
        "# Real faces through the service (faces_dev)",
        "",
        f"Data: `{source}`: in-the-wild news-photo faces, single annotator (see its README). Each picture",
        "goes through the emotion service's pipeline as an uploaded PNG; the largest face is scored; no",
        "face counts as wrong. Macro recall averages the classes present.",
        "",
        "Command: `python -m training.emotion.real_faces --variant NAME [--set FIELD=VALUE ...]"
        " [--turn DEG] [--tight SHARE]`",
        "(--turn: every picture turned by DEG degrees, alternately each way, as a head on one side;",
        "--tight: only the central SHARE of each picture, at 162x193 px: the face fills it, an ID photo).",
        "",
        "| variant | settings | model | n | accuracy | macro recall | no face | "
        + " | ".join(f"{e} recall" for e in EMOTIONS)
        + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(EMOTIONS),
    ]
    for name, r in rows.items():
        per = [f"{r['per_class_recall'][e]:.1%}" if e in r["per_class_recall"] else "" for e in EMOTIONS]
        lines.append(
            f"| {name} | {r['settings'] or 'defaults'} | {r['model']} | {r['n']} | {r['accuracy']:.1%} | "
            f"{r['macro_recall']:.1%} | {r['no_face']} | " + " | ".join(per) + " |"
        )
    lines += [
        "",
        "## The confusions users see",
        "",
        "faces_dev: faces of the label read as the other class, out of the label's faces. photos: the",
        "labelled single-face photos in DATA/photos, each uploaded whole (rows measured before this column",
        "existed show -).",
        "",
        "| variant | model | "
        + " | ".join(f"faces_dev {a}->{b}" for a, b in CONFUSIONS)
        + " | photos neutral->happy | photos happy right | photos with exactly one face |",
        "|---|---|" + "---|" * (len(CONFUSIONS) + 3),
    ]
    for name, r in rows.items():
        c = confusions(r)
        ph = r.get("photos")
        if ph:
            neutral, happy = ph["read_as"].get("neutral", {}), ph["read_as"].get("happy", {})
            tail = (
                f"{neutral.get('happy', 0)}/{sum(neutral.values())} | "
                f"{happy.get('happy', 0)}/{sum(happy.values())} | {ph['exactly_one_face']}/{ph['photos']}"
            )
        else:
            tail = "- | - | -"
        lines.append(f"| {name} | {r['model']} | " + " | ".join(c.values()) + f" | {tail} |")
    lines += ["", "Confusion heatmaps: `real_faces_<variant>.png` beside this report.", ""]
    return "\n".join(lines)


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="faces npz (default: DATA/faces_dev/...)")
    ap.add_argument("--out", type=Path, default=Path("reports/emotion"))
    ap.add_argument("--variant", required=True, help="the row's name in the report")
    ap.add_argument("--set", action="append", default=[], metavar="[GROUP.]FIELD=VALUE")
    ap.add_argument("--turn", type=float, default=0.0, help="turn each picture this many degrees first")
    ap.add_argument("--tight", type=float, default=0.0, help="send only this central share, at 162x193 px")
    args = ap.parse_args()
    data = args.data or data_dir() / "faces_dev" / "muxspace_dev.npz"
    fields = EmotionSettings().model_dump()  # the environment's settings, with the overrides on top
    for item in args.set:
        key, _, value = item.partition("=")
        group, _, name = key.rpartition(".")
        (fields[group] if group else fields)[name] = value
    settings = EmotionSettings.model_validate(fields)  # pydantic converts the strings
    images, labels = read(data)
    pipeline = EmotionPipeline(settings)
    result = scores(labels, run(pipeline, images, args.turn, args.tight))
    shown = args.set + ([f"turned ±{args.turn:g}°"] if args.turn else [])
    shown += [f"central {args.tight:.0%} at 162x193"] if args.tight else []
    result["settings"] = " ".join(shown)
    result["model"] = pipeline.classifier.name
    if not args.turn and not args.tight:  # the photos as users upload them
        result["photos"] = photos(pipeline, data_dir() / "photos")

    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "real_faces.json"
    rows = json.loads(store.read_text()) if store.is_file() else {}
    rows[args.variant] = result
    store.write_text(json.dumps(rows, indent=1) + "\n")
    heatmap(result, args.out / f"real_faces_{args.variant}.png", f"faces_dev, {args.variant}")
    (args.out / "real_faces.md").write_text(markdown(rows, data.name))
    log.info(
        f"{args.variant}: accuracy {result['accuracy']:.1%}, macro recall {result['macro_recall']:.1%}, "
        f"no face {result['no_face']}/{result['n']}"
    )


if __name__ == "__main__":
    main()
