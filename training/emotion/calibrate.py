"""Temperature scaling: one number T, fitted on FER2013 val, that makes the model's probabilities mean
what they say (softmax(logits / T)). The argmax, and so every accuracy figure, is unchanged.

    python -m training.emotion.calibrate --model services/emotion/model/emotion.int8.onnx

T goes into the model's card (`calibration.temperature`), which the service reads at start-up. Expected
calibration error (ECE, 15 equal-width confidence bins) is reported on val and on test, before and
after, with a reliability diagram, in reports/<model>/calibration.md (--out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from scipy.optimize import minimize_scalar  # noqa: E402
from scipy.special import log_softmax, softmax  # noqa: E402

from bench import report
from services.emotion.classifier import card_path  # noqa: E402
from training.emotion import data as fer  # noqa: E402
from training.logs import configure, logger  # noqa: E402
from training.settings import settings  # noqa: E402

log = logger("calibrate")

BINS = 15
REPORT_FILES = ("calibration.md", "calibration.json", "reliability_test.png")


def logits(model: Path, images: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = [
        sess.run(None, {name: images[i : i + 256, None].astype(np.float32)})[0]
        for i in range(0, len(images), 256)
    ]
    return np.concatenate(out).astype(np.float64)


def nll(z: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    return float(-log_softmax(z / temperature, axis=1)[np.arange(len(labels)), labels].mean())


def fit_temperature(z: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises val negative log-likelihood (searched on log T, so T stays positive)."""
    res = minimize_scalar(lambda t: nll(z, labels, float(np.exp(t))), bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(res.x))


def reliability(probs: np.ndarray, labels: np.ndarray) -> tuple[float, list[dict]]:
    """ECE and the per-bin confidence/accuracy behind it."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0.0, 1.0, BINS + 1)
    bins, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if not inside.any():
            continue
        acc, mean_conf = float((pred[inside] == labels[inside]).mean()), float(conf[inside].mean())
        ece += inside.mean() * abs(acc - mean_conf)
        bins.append(
            {
                "lo": float(lo),
                "hi": float(hi),
                "n": int(inside.sum()),
                "accuracy": acc,
                "confidence": mean_conf,
            }
        )
    return float(ece), bins


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:", label="perfect")
    for name, bins in curves.items():
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label=name)
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability, FER2013 test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def calibrate(model: Path, data_path: Path, out: Path, card: Path) -> dict:
    ds = fer.load(data_path)
    val, test = ds.subset("val"), ds.subset("test")
    z_val, z_test = logits(model, val.images), logits(model, test.images)
    temperature = fit_temperature(z_val, val.labels)
    result: dict = {"temperature": temperature, "fitted_on": "FER2013 val", "bins": BINS}
    curves = {}
    for split, z, labels in (("val", z_val, val.labels), ("test", z_test, test.labels)):
        for name, t in (("before", 1.0), ("after", temperature)):
            ece, bins = reliability(softmax(z / t, axis=1), labels)
            result[f"{split}_{name}"] = {"ece": ece, "nll": nll(z, labels, t)}
            if split == "test":
                curves[f"{name} (T={t:.2f})"] = bins
    out.mkdir(parents=True, exist_ok=True)
    plot(curves, out / "reliability_test.png")
    report.write(
        out,
        "calibration",
        result,
        title=f"Calibration: {model.name}",
        command=f"python -m training.emotion.calibrate --model {model} --out {out}",
        notes=[
            "Temperature T fitted on FER2013 val (NLL); the service divides the logits by T (read from the "
            "card). ece: expected calibration error over the confidence bins; nll: negative log-likelihood; "
            "before (T = 1) and after, on val and test.",
        ],
        plots=["reliability_test.png"],
    )
    info = json.loads(card.read_text())
    info["calibration"] = {k: result[k] for k in ("temperature", "fitted_on", "val_after", "test_after")}
    card.write_text(json.dumps(info, indent=2) + "\n")
    return result


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=None, help="FER2013 (default: DATA/fer2013/fer2013.npz)")
    ap.add_argument("--out", type=Path, default=None, help="report folder (default: reports/<model stem>)")
    ap.add_argument("--card", type=Path, default=None, help="the card to update (default: beside the model)")
    args = ap.parse_args()
    data = args.data or settings.data / "fer2013" / "fer2013.npz"
    out = args.out or settings.reports / args.model.stem.replace(".", "-")
    r = calibrate(args.model, data, out, args.card or card_path(args.model))
    log.info(
        f"T={r['temperature']:.3f}  test ECE {r['test_before']['ece']:.3f} -> {r['test_after']['ece']:.3f}"
    )


if __name__ == "__main__":
    main()
