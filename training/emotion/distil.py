"""Distillation: one student learns what an ensemble of teachers says about each training face.

    python -m training.emotion.distil targets --teacher runs/ensemble/pair-flip.onnx \\
        --out models/teachers/pair-flip.npz        # once: the teachers' view of the train split
    python -m training.emotion.pipeline --config vgg7-distil --threads 1   # the student (resumable)

`targets` runs a teacher graph (any graph with the service's contract, e.g. an ensemble built by
training/emotion/ensemble.py) over the FER2013 train split and stores its log-probabilities as float16,
with the split's fingerprint, so that training checks it blends them into the faces they belong to.
It is computed once and committed: students on any machine read the same file.

A config with `distil = "<that file>"` and `distil_weight > 0` blends the teacher's distribution
(softened by `distil_temperature`) into its targets (train.targets); `init_onnx` starts the student from
an ONNX graph's weights (weights_from_onnx), e.g. the shipped model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from training.emotion import calibrate, evaluate
from training.emotion import data as fer
from training.emotion.ensemble import float32_weights
from training.emotion.model import VGGNet, build
from training.logs import configure, logger
from training.settings import REPO, settings

log = logger("distil")


def read_targets(path: Path, train: fer.FerData) -> np.ndarray:
    """The teacher's log-probabilities [N, 7] for `train`, after checking they were made for it."""
    with np.load(path, allow_pickle=False) as z:
        if str(z["train_data"]) != evaluate.fingerprint(train):
            raise ValueError(
                f"{path}: made for other train faces ({z['train_data']}, this data "
                f"{evaluate.fingerprint(train)})"
            )
        return z["logprobs"].astype(np.float32)


def save_targets(path: Path, logprobs: np.ndarray, info: dict) -> None:
    """The file's format: log-probabilities as float16, the train split's fingerprint, the rest as JSON."""
    np.savez_compressed(
        path,
        logprobs=logprobs.astype(np.float16),
        train_data=np.array(info["train_data"]),
        info=np.array(json.dumps(info)),
    )


def write_targets(teacher: Path, data: Path, out: Path, limit: int = 0) -> dict:
    """Runs the teacher over the train split (the first `limit` faces when > 0) and writes the npz."""
    train = fer.load(data).subset("train")
    if limit:
        train = fer.FerData(train.images[:limit], train.labels[:limit], train.split[:limit])
    z = calibrate.logits(teacher, train.images)
    logprobs = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = onnx.load(str(teacher), load_external_data=False).metadata_props
    props = {p.key: p.value for p in meta}
    info = {
        "teacher": props.get("name", teacher.stem),
        "members": props.get("members", ""),
        "flip": props.get("flip", "false"),
        "train_data": evaluate.fingerprint(train),
        "n": len(train),
        "train_accuracy": float((z.argmax(1) == train.labels).mean()),
    }
    tmp = out.with_name(out.name + ".tmp.npz")
    save_targets(tmp, logprobs, info)
    tmp.replace(out)
    log.info(json.dumps(info))
    return info


def weights_from_onnx(path: Path, arch: str, images: np.ndarray) -> VGGNet:
    """A PyTorch model with an exported graph's weights. The export folds each batch norm into the layer
    before it (W, b); here every norm is set so that, in eval mode, the layer computes W x + b exactly:
    its running mean and variance are those of W x over `images` (so that training, which normalises
    by batch statistics, starts where the graph is), scale sqrt(var + eps), shift mean + b."""
    graph = float32_weights(onnx.load(str(path)))
    w = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.graph.initializer}
    model = build(arch).eval()
    modules = dict(model.named_modules())
    hooks = []
    for name, layer in modules.items():
        if not isinstance(layer, nn.Conv2d | nn.Linear):
            continue
        layer.weight.data.copy_(w[f"{name}.weight"])
        if layer.bias is not None:  # the last layer: no norm after it
            layer.bias.data.copy_(w[f"{name}.bias"])
            continue
        parent, index = name.rsplit(".", 1)
        norm = modules[f"{parent}.{int(index) + 1}"]
        assert isinstance(norm, nn.BatchNorm1d | nn.BatchNorm2d)
        bias = w[f"{name}.weight_bias"]

        def fit(
            _m: nn.Module,
            _inp: tuple,
            out: torch.Tensor,
            norm: nn.BatchNorm1d | nn.BatchNorm2d = norm,
            bias: torch.Tensor = bias,
        ) -> None:
            dims = [0, 2, 3] if out.dim() == 4 else [0]
            mean, var = out.mean(dims), out.var(dims, unbiased=False)
            assert norm.running_mean is not None and norm.running_var is not None
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var)
            norm.weight.data.copy_(torch.sqrt(var + norm.eps))
            norm.bias.data.copy_(mean + bias)

        hooks.append(layer.register_forward_hook(fit))
    with torch.no_grad():
        model(torch.from_numpy(images[:, None].astype(np.float32)))
    for h in hooks:
        h.remove()
    return model


def init_checkpoint(path: Path, arch: str, data: Path, out: Path) -> Path:
    """Writes a best.pt-shaped checkpoint of the graph's weights (train.train's `init`); the norms are fitted
    on 2048 train faces."""
    train = fer.load(data).subset("train")
    pick = np.sort(np.random.default_rng(0).choice(len(train), min(2048, len(train)), replace=False))
    model = weights_from_onnx(path, arch, train.images[pick])
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "source": str(path)}, out)
    return out


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("targets", help="the teacher's log-probabilities for the train split")
    t.add_argument("--teacher", type=Path, required=True, help="an ONNX graph with the service's contract")
    t.add_argument("--data", type=Path, default=settings.data / "fer2013" / "fer2013.npz")
    t.add_argument("--out", type=Path, default=REPO / "models" / "teachers" / "pair-flip.npz")
    args = ap.parse_args()
    if args.command == "targets":
        write_targets(args.teacher, args.data, args.out)


if __name__ == "__main__":
    main()
