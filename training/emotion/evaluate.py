"""Evaluates an emotion ONNX model on FER2013 (any supported format) and writes a report.

    python -m training.emotion.evaluate --model services/emotion/model/emotion.onnx --out runs/eval/shipped

Per split (val, test): accuracy, macro and weighted precision/recall/F1, a per-class table and a
confusion-matrix heatmap, single pass and with horizontal-flip averaging (reported separately). When
the data carries FER+ votes: FER+ majority-vote accuracy (rows with NF >= 5 dropped) and FER+'s official
majority (ferplus_official).
With --card, the metrics are also written into the model card, with a fingerprint of the val split
(`val_data`): the pipeline compares val accuracies only between models measured on the same faces.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from scipy.special import softmax  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)

from services.common.contracts import EMOTIONS  # noqa: E402
from training.emotion import data as fer  # noqa: E402
from training.logs import configure, logger  # noqa: E402
from training.settings import settings  # noqa: E402

log = logger("evaluate")


def fingerprint(part: fer.FerData) -> str:
    """The same faces and labels give the same string, whatever file format they were read from."""
    digest = hashlib.sha256(part.images.astype(np.uint8).tobytes())
    digest.update(part.labels.astype(np.int64).tobytes())
    return f"sha256:{digest.hexdigest()[:16]}"


def predict(sess: ort.InferenceSession, images: np.ndarray, flip: bool) -> np.ndarray:
    """Class probabilities; with flip, averaged with those of the mirrored faces."""
    name = sess.get_inputs()[0].name
    probs = []
    for i in range(0, len(images), 256):
        x = images[i : i + 256, None].astype(np.float32)
        p = softmax(sess.run(None, {name: x})[0], axis=1)
        if flip:
            p = (p + softmax(sess.run(None, {name: x[..., ::-1].copy()})[0], axis=1)) / 2
        probs.append(p)
    return np.concatenate(probs)


def scores(y: np.ndarray, pred: np.ndarray) -> dict:
    out: dict[str, Any] = {"n": int(len(y)), "accuracy": float(accuracy_score(y, pred))}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        out[avg] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    report = classification_report(
        y, pred, labels=range(7), target_names=EMOTIONS, output_dict=True, zero_division=0
    )
    out["per_class"] = {e: {k: float(v) for k, v in report[e].items()} for e in EMOTIONS}
    out["confusion"] = confusion_matrix(y, pred, labels=range(7)).tolist()
    return out


def ferplus_majority(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER+ majority label in FER2013 order, and a mask of usable rows (NF < 5, majority not contempt,
    unknown or NF)."""
    keep = votes[:, 9] < 5
    majority = votes.argmax(1)
    keep &= np.isin(majority, list(fer.FERPLUS_TO_FER))
    labels = np.array([fer.FERPLUS_TO_FER.get(int(m), -1) for m in majority])
    return labels, keep


def ferplus_official(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER+'s own majority (issue 24's definition): single votes dropped as noise, and a face kept when
    one of the seven FER2013 emotions holds more than half of the votes that remain (unknown, not-a-face
    and contempt votes count in the total). Labels in FER2013 order, and the mask of kept faces.
    On PrivateTest this keeps 3137 faces (the issue counted 3136)."""
    counted = np.where(votes == 1, 0, votes)
    seven = np.zeros((len(votes), len(EMOTIONS)), np.int64)
    for src, dst in fer.FERPLUS_TO_FER.items():
        seven[:, dst] = counted[:, src]
    total = counted.sum(1)
    keep = (total > 0) & (2 * seven.max(1) > total)
    return seven.argmax(1), keep


def plot_confusion(cm: list, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ConfusionMatrixDisplay(np.asarray(cm), display_labels=EMOTIONS).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45, values_format="d"
    )
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(name: str, results: dict) -> str:
    lines = [
        f"# Emotion model evaluation: {name}",
        "",
        "| split | pass | accuracy | macro P | macro R | macro F1 | weighted F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for split in ("val", "test"):
        for mode in ("single", "flip"):
            s = results[split][mode]
            lines.append(
                f"| {split} | {mode} | {s['accuracy']:.2%} | {s['macro']['precision']:.3f} | "
                f"{s['macro']['recall']:.3f} | {s['macro']['f1']:.3f} | {s['weighted']['f1']:.3f} |"
            )
    for split in ("val", "test"):
        if f"ferplus_{split}" in results:
            fp = results[f"ferplus_{split}"]
            lines += [
                "",
                f"FER+ majority-vote accuracy on {split} ({fp['n']} faces, NF >= 5 and "
                f"contempt/unknown majorities dropped): single {fp['single']:.2%}, "
                f"flip {fp['flip']:.2%}",
            ]
        if f"ferplus_official_{split}" in results:
            fp = results[f"ferplus_official_{split}"]
            lines += [
                "",
                f"FER+ official majority on {split} ({fp['n']} faces: single votes dropped, the top "
                f"emotion holding more than half of the rest): single {fp['single']:.2%}, "
                f"flip {fp['flip']:.2%}",
            ]
    lines += [
        "",
        "Per class, test, single pass:",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for e, s in results["test"]["single"]["per_class"].items():
        lines.append(
            f"| {e} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1-score']:.3f} | {int(s['support'])} |"
        )
    lines += ["", "![confusion, test](confusion_test.png) ![confusion, val](confusion_val.png)", ""]
    return "\n".join(lines)


def evaluate(model: Path, data_path: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    name = meta.get("name", model.stem)
    ds = fer.load(data_path)
    results: dict = {"model": name, "file": str(model), "val_data": fingerprint(ds.subset("val"))}
    for split in ("val", "test"):
        part = ds.subset(split)
        for mode in ("single", "flip"):
            probs = predict(sess, part.images, flip=mode == "flip")
            results.setdefault(split, {})[mode] = scores(part.labels, probs.argmax(1))
            if part.ferplus_votes is not None:
                labels, keep = ferplus_majority(part.ferplus_votes)
                acc = float((probs.argmax(1)[keep] == labels[keep]).mean())
                results.setdefault(f"ferplus_{split}", {"n": int(keep.sum())})[mode] = acc
                labels, keep = ferplus_official(part.ferplus_votes)
                acc = float((probs.argmax(1)[keep] == labels[keep]).mean())
                results.setdefault(f"ferplus_official_{split}", {"n": int(keep.sum())})[mode] = acc
        plot_confusion(
            results[split]["single"]["confusion"],
            f"{name}, {split} (single pass)",
            out / f"confusion_{split}.png",
        )
    (out / "metrics.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "report.md").write_text(markdown(name, results))
    return results


def summary(r: dict) -> dict:
    """The accuracies a card and a log line carry."""
    out = {f"{s}_{m}": round(r[s][m]["accuracy"], 4) for s in ("val", "test") for m in ("single", "flip")}
    for split in ("val", "test"):
        for key in (f"ferplus_{split}", f"ferplus_official_{split}"):
            if key in r:
                out[f"{key}_single"] = round(r[key]["single"], 4)
    return out


def add_to_card(card: Path, r: dict, report: Path) -> None:
    data = json.loads(card.read_text())
    data["metrics"] = {
        **summary(r),
        "test_macro_f1": round(r["test"]["single"]["macro"]["f1"], 4),
        "val_data": r["val_data"],
        "report": str(report),
    }
    card.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=settings.model_dir / "emotion.onnx")
    ap.add_argument(
        "--data",
        type=Path,
        default=settings.data / "fer2013" / "fer2013.npz",
        help="fer2013.npz, fer2013.csv or a <split>/<class>/ folder",
    )
    ap.add_argument("--out", type=Path, help="report folder (default runs/eval/<model file stem>)")
    ap.add_argument("--card", type=Path, help="model card to add the metrics to")
    args = ap.parse_args()
    out = args.out or settings.runs / "eval" / args.model.stem
    r = evaluate(args.model, args.data, out)
    if args.card:
        add_to_card(args.card, r, out / "report.md")
    log.info(json.dumps(summary(r)))


if __name__ == "__main__":
    main()
