"""Quantizes the exported emotion model to int8, the model the service runs, and checks it against
the float model.

    python -m training.emotion.quantize [--model services/emotion/model/emotion.onnx]
        [--out runs/quantize/emotion.int8.onnx] [--full-range]

A step of `python -m training.emotion.pipeline`, which ships the int8 model only when it beats the
shipped one.

ONNX Runtime static quantization: weights int8 per output channel, activations uint8 with ranges
calibrated on training faces (the train split only: val and test stay unseen). The graph keeps
QuantizeLinear/DequantizeLinear pairs, which ONNX Runtime fuses into integer convolutions at load.

reduce_range (7-bit weights): on x86 CPUs without VNNI (AVX2, as on the machine this was made on),
ONNX Runtime multiplies uint8 x int8 pairs with an instruction whose 16-bit sums saturate. With full
8-bit weights (--full-range, reports/emotion-int8-full-range/) FER2013 test accuracy falls by about 3
points; with 7 bits it does not move (reports/emotion-int8/).

The card (beside the output, `<stem>.card.json`) records the source model, the method and the
parity with the float model on the val split; `evaluate --card` adds the metrics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from services.emotion.classifier import card_path
from training.emotion import data as fer
from training.emotion.export import git_commit
from training.logs import configure, logger
from training.settings import settings

log = logger("quantize")

CALIBRATION_FACES = 1024
BATCH = 64


class _Faces(CalibrationDataReader):
    def __init__(self, input_name: str, images: np.ndarray) -> None:
        self.batches = iter(
            [
                {input_name: images[i : i + BATCH, None].astype(np.float32)}
                for i in range(0, len(images), BATCH)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def quantize(model: Path, out: Path, calibration: np.ndarray, reduce_range: bool = True) -> None:
    """Writes the int8 model; calibration: uint8 grey faces [N, 48, 48]. The float model's metadata
    (class names, name) is carried over, with the name suffixed -int8 (-int8-full-range without
    reduce_range)."""
    source = onnx.load(str(model))
    input_name = source.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            _Faces(input_name, calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    props = {p.key: p.value for p in source.metadata_props}
    props["name"] = props.get("name", model.stem) + ("-int8" if reduce_range else "-int8-full-range")
    quantized = onnx.load(str(out))
    onnx.helper.set_model_props(quantized, props)
    onnx.checker.check_model(quantized)
    onnx.save(quantized, str(out))


def logits(model: Path, images: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate(
        [
            sess.run(None, {name: images[i : i + 256, None].astype(np.float32)})[0]
            for i in range(0, len(images), 256)
        ]
    )


def parity(reference: Path, quantized: Path, images: np.ndarray) -> dict:
    ref, got = logits(reference, images), logits(quantized, images)
    return {
        "n": len(images),
        "prediction_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
        "max_abs_logit_diff": float(np.abs(ref - got).max()),
        "mean_abs_logit_diff": float(np.abs(ref - got).mean()),
    }


def quantize_model(
    model: Path,
    out: Path,
    data: Path,
    faces: int = CALIBRATION_FACES,
    seed: int = 0,
    full_range: bool = False,
) -> dict:
    """Writes the int8 copy of `model` to `out` and its card beside it; returns the card."""
    ds = fer.load(data)
    train = ds.subset("train")
    pick = np.random.default_rng(seed).choice(len(train), min(faces, len(train)), replace=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize(model, out, train.images[np.sort(pick)], reduce_range=not full_range)
    check = parity(model, out, ds.subset("val").images)

    card = json.loads(card_path(model).read_text())
    # The float model's metrics and ONNX/PyTorch parity; evaluate --card writes this model's metrics,
    # and parity_val_vs_float below is its own parity.
    card.pop("metrics", None)
    card.pop("parity", None)
    card.update(
        {
            "name": card.get("name", model.stem) + ("-int8-full-range" if full_range else "-int8"),
            "file": out.name,
            "quantization": {
                "source": model.name,
                "source_sha256": hashlib.sha256(model.read_bytes()).hexdigest()[:12],
                "method": "ONNX Runtime static quantization, QDQ, weights int8 per channel"
                + (", full 8-bit range" if full_range else " with reduce_range (7-bit)")
                + ", activations uint8, MinMax calibration",
                "calibration": f"{len(pick)} faces of the FER2013 train split (seed {seed})",
                "command": "python -m training.emotion.quantize" + (" --full-range" if full_range else ""),
                "parity_val_vs_float": check,
            },
            "code_commit": git_commit(),
            "size_bytes": out.stat().st_size,
        }
    )
    card_path(out).write_text(json.dumps(card, indent=2) + "\n")
    log.info(json.dumps({"onnx": str(out), "card": str(card_path(out)), **check}))
    if check["prediction_agreement"] < 0.95:
        raise SystemExit("the int8 model disagrees with the float model on more than 5% of val faces")
    return card


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=settings.model_dir / "emotion.onnx")
    ap.add_argument("--out", type=Path, help="default runs/quantize/<model stem>.int8.onnx")
    ap.add_argument("--data", type=Path, default=settings.data / "fer2013" / "fer2013.npz")
    ap.add_argument("--faces", type=int, default=CALIBRATION_FACES, help="calibration faces")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--full-range",
        action="store_true",
        help="8-bit weights instead of 7 (for comparison: saturates on CPUs without VNNI)",
    )
    args = ap.parse_args()
    out = args.out or settings.runs / "quantize" / f"{args.model.stem}.int8.onnx"
    quantize_model(args.model, out, args.data, args.faces, args.seed, args.full_range)


if __name__ == "__main__":
    main()
