"""Exports a training run to ONNX per the model contract and checks it against PyTorch.

    python -m training.emotion.export --run runs/vgg7-tuned [--out runs/vgg7-tuned/model/emotion.onnx]
    python -m training.emotion.export --half-weights models/baseline/baseline.onnx   # in place

A step of `python -m training.emotion.pipeline`, which exports into the run folder and ships the model
only when it beats the shipped one.

Contract: input `image` float32 [N,1,48,48] of grey pixels 0..255 (normalisation is inside the graph),
output `logits` [N,7] in FER2013 order, class names in the metadata key `classes`. The card (JSON, beside
the model) records architecture, data, training time and the code commit; `evaluate` adds the metrics.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from services.common.contracts import EMOTIONS
from services.emotion.classifier import card_path
from training.emotion import data as fer
from training.emotion.model import ARCHITECTURES, build, n_params
from training.emotion.train import CONFIGS, Config
from training.logs import configure, logger
from training.settings import REPO, settings

log = logger("export")


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_run(run: Path) -> tuple[torch.nn.Module, dict]:
    ck = torch.load(run / "best.pt", weights_only=False, map_location="cpu")  # GPU-trained runs too
    model = build(ck["config"]["arch"])
    model.load_state_dict(ck["model"])
    return model.eval(), ck


def to_onnx(model: torch.nn.Module, out: Path, name: str, size: int = 48) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, size, size),),
        str(out),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
        opset_version=18,
        dynamo=True,
        external_data=False,
    )
    m = onnx.load(str(out))
    onnx.helper.set_model_props(
        m,
        {
            "classes": ",".join(EMOTIONS),
            "name": name,
            "input": "grey pixels 0..255, face crop",
            "commit": git_commit(),
        },
    )
    onnx.checker.check_model(m)
    onnx.save(m, str(out))


def half_weights(path: Path) -> None:
    """Rewrites the model with its float32 weights stored as float16, each behind a Cast back to float32:
    half the file, and ONNX Runtime folds the Casts when it loads the model, so it still computes in
    float32 (with weights rounded to float16). For models kept in git only as a reference (the baseline)."""
    m = onnx.load(str(path))
    graph = m.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        name, stored = init.name, f"{init.name}.float16"
        weights = onnx.numpy_helper.to_array(init).astype(np.float16)
        init.CopyFrom(onnx.numpy_helper.from_array(weights, stored))
        casts.append(onnx.helper.make_node("Cast", [stored], [name], to=onnx.TensorProto.FLOAT))
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(m)
    tmp = path.with_suffix(".tmp")
    onnx.save(m, str(tmp))
    tmp.replace(path)  # never a half-written model


def parity(model: torch.nn.Module, onnx_path: Path, x: np.ndarray) -> dict:
    """Same inputs through PyTorch and ONNX Runtime: prediction agreement and max logit difference."""
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x})[0]
    return {
        "n": len(x),
        "max_abs_logit_diff": float(np.abs(ref - got).max()),
        "prediction_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
    }


def train_command(cfg: dict) -> str:
    """The command that trains this config: the named config whose settings match, epochs overridden."""
    cfg = {**asdict(Config()), **cfg}  # runs from before a field existed have its default
    for name, c in CONFIGS.items():
        if {**asdict(c), "epochs": cfg["epochs"]} == cfg:
            extra = "" if c.epochs == cfg["epochs"] else f" --epochs {cfg['epochs']}"
            return f"python -m training.emotion.train --config {name}{extra}"
    return f"python -m training.emotion.train with {cfg}"


def earlier_stages(history: dict) -> list[dict]:
    """The runs a fine-tuned run started from, first stage first, as far as their histories are found."""
    stages = []
    while history.get("init"):
        run = Path(history["init"]).parent
        if not (run / "history.json").exists():
            stages.append({"run": str(run), "history": "not found"})
            break
        history = json.loads((run / "history.json").read_text())
        stages.append(
            {
                "run": str(run),
                "command": train_command(history["config"]),
                "epochs": history["epoch"],
                "hardware": history.get("hardware", "unknown"),
                "training_minutes": round(history["seconds"] / 60, 1),
            }
        )
    return stages[::-1]


def export_run(
    run: Path, out: Path, data: Path, name: str | None = None, float16_weights: bool = False
) -> dict:
    """Writes the run's best weights as ONNX to `out` and its card beside it; returns the card.
    float16_weights: stored as float16 (half_weights), which parity allows for."""
    model, ck = load_run(run)
    cfg = ck["config"]
    name = name or f"moodtunes-{cfg['arch']}"
    to_onnx(model, out, name)
    if float16_weights:
        half_weights(out)

    if data.exists():
        val = fer.load(data).subset("val")
        x = val.images[:512, None].astype(np.float32)
    else:  # parity still means something on random pixels
        x = np.random.default_rng(0).uniform(0, 255, (64, 1, 48, 48)).astype(np.float32)
    check = parity(model, out, x)
    history = json.loads((run / "history.json").read_text())
    card = {
        "name": name,
        "file": out.name,
        "architecture": {"name": cfg["arch"], **ARCHITECTURES[cfg["arch"]], "parameters": n_params(model)},
        "input": {
            "name": "image",
            "shape": ["N", 1, 48, 48],
            "dtype": "float32",
            "range": "grey pixels 0..255; normalisation inside the graph",
        },
        "output": {"name": "logits", "shape": ["N", 7], "classes": list(EMOTIONS)},
        "data": "FER2013 (train split for fitting, val = PublicTest for model selection, "
        "test = PrivateTest reported only)",
        "training": {
            "config": cfg,
            "epochs_run": history["epoch"],
            "selected_epoch": ck["epoch"],
            "selected_weights": "EMA" if ck.get("ema") else "raw",
            "val_acc_at_selection": ck["val_acc"],
            "training_minutes": round(history["seconds"] / 60, 1),
            "hardware": history.get("hardware", "unknown"),
            "command": train_command(cfg),
            "earlier_stages": earlier_stages(history),
        },
        "code_commit": git_commit(),
        "parity": check,
        "weights_stored_as": "float16" if float16_weights else "float32",
        "size_bytes": out.stat().st_size,
    }
    card_file = card_path(out)
    card_file.write_text(json.dumps(card, indent=2) + "\n")
    log.info(json.dumps({"onnx": str(out), "card": str(card_file), **check}))
    # float16 weights move the logits by about their rounding, not the predictions.
    if check["prediction_agreement"] < 0.99 or check["max_abs_logit_diff"] > (
        0.05 if float16_weights else 1e-3
    ):
        raise SystemExit("ONNX output differs from PyTorch")
    return card


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=settings.runs / "vgg7-tuned")
    ap.add_argument("--out", type=Path, help="default <run>/model/emotion.onnx")
    ap.add_argument("--data", type=Path, default=settings.data / "fer2013" / "fer2013.npz")
    ap.add_argument("--name", help="model name in the metadata and card (default: moodtunes-<arch>)")
    ap.add_argument(
        "--half-weights", type=Path, metavar="ONNX", help="only rewrite this model's weights as float16"
    )
    args = ap.parse_args()
    if args.half_weights:
        half_weights(args.half_weights)
        card = card_path(args.half_weights)
        if card.exists():  # its metrics stay until `evaluate --card` measures the rewritten model
            meta = json.loads(card.read_text())
            meta.update(weights_stored_as="float16", size_bytes=args.half_weights.stat().st_size)
            card.write_text(json.dumps(meta, indent=2) + "\n")
        return
    export_run(args.run, args.out or args.run / "model" / "emotion.onnx", args.data, args.name)


if __name__ == "__main__":
    main()
