"""Trains an emotion CNN on FER2013. Read top to bottom: config, data, model, loop, checkpoint.

This is the pipeline's first step; `python -m training.emotion.pipeline --config vgg7-tuned` trains,
exports, evaluates, quantizes and (when it is better) ships the model. Alone:

    python -m training.emotion.train --config vgg7-tuned       # the shipped recipe (two stages)
    python -m training.emotion.train --config original         # the prototype's architecture, as baseline
    python -m training.emotion.train --config smoke            # CI: one short epoch on a few hundred images
    python -m training.emotion.train --config vgg7 --budget-minutes 120   # as many epochs as fit 2 hours

Configs are the small files in configs/ (<name>.toml: the fields of Config below).

Runs are resumable: each epoch writes <out>/last.pt; rerunning the same command continues from it.
The weights with the best validation accuracy (raw or EMA) go to <out>/best.pt. The test split is never
looked at here.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from training.emotion import data as fer
from training.emotion.augment import random_affine, random_erase
from training.emotion.model import build, n_params
from training.logs import configure, logger
from training.settings import REPO, settings

log = logger("train")


@dataclass(frozen=True)
class Config:
    arch: str = "vgg7"
    epochs: int = 160
    batch_size: int = 128
    lr: float = 0.1  # peak of a one-cycle schedule (SGD, Nesterov momentum)
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    ema_decay: float = 0.999
    rotate_deg: float = 15.0
    zoom: float = 0.15
    shift: float = 0.1
    erase_p: float = 0.5
    ferplus_weight: float = 0.0  # >0: targets mix the FER2013 label with this share of FER+ vote shares
    init_from: str = ""  # a config whose run's best weights this one starts from (trained first if absent)
    init_onnx: str = ""  # or an ONNX graph (path from the repository) whose weights it starts from
    distil: str = ""  # teacher log-probabilities for the train split (distil.py), path from the repository
    distil_weight: float = 0.0  # >0: this share of the targets is the teacher's distribution
    distil_temperature: float = 1.0  # the teacher's log-probabilities are divided by this first
    seed: int = 0
    limit: int = 0  # >0: use only this many images per split (smoke runs)


CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SHIPPED = "vgg7-tuned"


def load_config(path: Path) -> Config:
    """A config file: Config's fields at the top level; tables (the pipeline's [ship]) are not training's."""
    fields = {k: v for k, v in tomllib.loads(path.read_text()).items() if not isinstance(v, dict)}
    return Config(**fields)


CONFIGS = {p.stem: load_config(p) for p in sorted(CONFIG_DIR.glob("*.toml"))}


def use_bf16(device: str) -> bool:
    # bf16 autocast speeds up CPUs with native bf16 (AVX512-BF16/AMX), but on AVX2-only CPUs oneDNN
    # emulates it, far slower than fp32.
    return device == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_tensors(d: fer.FerData, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(d.images[: limit or None]).unsqueeze(1).float()
    return x, torch.from_numpy(d.labels[: limit or None])


def targets(d: fer.FerData, cfg: Config) -> torch.Tensor:
    """Class indices, or with ferplus_weight > 0 class distributions: the FER2013 label blended with the
    FER+ crowd's vote shares, which soften faces the crowd found ambiguous. With distil_weight > 0 that
    distribution is blended in turn with a teacher's (distil.py)."""
    labels = torch.from_numpy(d.labels[: cfg.limit or None])
    if cfg.ferplus_weight <= 0 and cfg.distil_weight <= 0:
        return labels
    soft = F.one_hot(labels, len(fer.EMOTIONS)).float()
    if cfg.ferplus_weight > 0:
        if d.ferplus_votes is None:
            raise ValueError("ferplus_weight needs FER+ votes in the data (the npz format has them)")
        shares, usable = fer.ferplus_shares(d.ferplus_votes[: cfg.limit or None])
        w = torch.from_numpy(usable).float().unsqueeze(1) * cfg.ferplus_weight
        soft = (1 - w) * soft + w * torch.from_numpy(shares)
    if cfg.distil_weight > 0:
        from training.emotion import distil  # distil -> ensemble -> export imports this module

        teacher = torch.from_numpy(distil.read_targets(REPO / cfg.distil, d)[: cfg.limit or None])
        soft = (1 - cfg.distil_weight) * soft + cfg.distil_weight * F.softmax(
            teacher / cfg.distil_temperature, dim=1
        )
    return soft


def hardware(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (CUDA, bf16 autocast)"
    bf16 = "bf16 autocast" if use_bf16(device) else "fp32"
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads, {bf16}"


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: str) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), 512):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=use_bf16(device)):
            logits = model(x[i : i + 512].to(device))
        correct += (logits.argmax(1).cpu() == y[i : i + 512]).sum().item()
    return correct / len(x)


def save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def setup(cfg: Config, device: str) -> tuple[torch.nn.Module, AveragedModel, torch.optim.Optimizer]:
    # channels_last lets oneDNN pick faster convolution kernels on CPU.
    # Module.to takes memory_format at run time; its typed overloads leave it out.
    model = build(cfg.arch).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
    )
    return model, ema, opt


def step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    cfg: Config,
    x: torch.Tensor,
    target: torch.Tensor,
    device: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented SGD step on a batch that already sits on the device; returns (logits, loss)."""
    xb = random_erase(random_affine(x, cfg.rotate_deg, cfg.zoom, cfg.shift), cfg.erase_p)
    xb = xb.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=use_bf16(device)):
        logits = model(xb)
        loss = F.cross_entropy(logits.float(), target, label_smoothing=cfg.label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return logits, loss


def epochs_for_budget(
    cfg: Config,
    minutes: float,
    x: torch.Tensor,
    target: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    device: str,
) -> int:
    """Times a few steps and a validation pass of a throwaway model: the epochs that fit in `minutes`."""
    model, ema, opt = setup(cfg, device)
    batches = [torch.randint(len(x), (cfg.batch_size,), device=x.device) for _ in range(23)]
    for idx in batches[:3]:  # warm-up: kernel selection, allocator
        step(model, opt, cfg, x[idx], target[idx], device)
    n = len(batches) - 3
    t0 = time.perf_counter()
    for idx in batches[3:]:
        _, loss = step(model, opt, cfg, x[idx], target[idx], device)
        ema.update_parameters(model)
        loss.item()  # the loop syncs once per step too
    per_step = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    accuracy(model, x_val, y_val, device)
    per_eval = 2 * (time.perf_counter() - t0)  # raw and EMA weights
    per_epoch = per_step * (len(x) // cfg.batch_size) + per_eval
    epochs = max(1, int(minutes * 60 / per_epoch))
    log.info(
        f"budget {minutes} min: {per_step * 1000:.1f} ms/step, {per_epoch:.1f} s/epoch -> {epochs} epochs"
    )
    return epochs


def probe(cfg: Config, data_path: Path, minutes: float) -> int:
    """`--probe`: what an epoch of this config costs on this hardware, and how many fit in `minutes`."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ds = fer.load(data_path)
    x_train, _ = to_tensors(ds.subset("train"), cfg.limit)
    x_val, y_val = to_tensors(ds.subset("val"), cfg.limit)
    log.info(f"{cfg.arch} on {hardware(device)}")
    seed_everything(cfg.seed)
    return epochs_for_budget(
        cfg, minutes, x_train.to(device), targets(ds.subset("train"), cfg).to(device), x_val, y_val, device
    )


def train(
    cfg: Config,
    data_path: Path,
    out: Path,
    stop_after: int = 0,
    budget_minutes: float = 0,
    max_epochs: int = 0,
    init: Path | None = None,
    deadline: float = 0,
) -> dict:
    """Trains (or resumes) a run; with stop_after > 0, returns after that many epochs of this call. With
    budget_minutes, a fresh run first sets its epoch count to what fits the budget on this hardware (at
    most max_epochs when that is > 0). With a deadline (time.time()), no epoch starts that would end
    after it (by the last epoch's time): a run sharing its device with others may be slower than the
    budget's estimate."""
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    ds = fer.load(data_path)
    train_set = ds.subset("train")
    x_train, y_train = to_tensors(train_set, cfg.limit)
    x_val, y_val = to_tensors(ds.subset("val"), cfg.limit)
    # The whole training set lives on the device: augmentation runs there, with no per-batch copy.
    x_train, y_train = x_train.to(device), y_train.to(device)
    t_train = targets(train_set, cfg).to(device)

    last = out / "last.pt"
    ck = torch.load(last, weights_only=False, map_location=device) if last.exists() else None
    if ck is not None:  # a resumed run keeps the epoch count it started with (a budget may have set it)
        cfg = replace(cfg, epochs=ck["config"]["epochs"])
    elif budget_minutes:
        seed_everything(cfg.seed)
        fit = epochs_for_budget(cfg, budget_minutes, x_train, t_train, x_val, y_val, device)
        cfg = replace(cfg, epochs=min(fit, max_epochs) if max_epochs else fit)
    seed_everything(cfg.seed)
    model, ema, opt = setup(cfg, device)
    if init is not None and ck is None:  # fine-tuning: start from another run's selected weights
        model.load_state_dict(torch.load(init, weights_only=False, map_location=device)["model"])
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    steps = len(x_train) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps, pct_start=0.15
    )
    state: dict[str, Any] = {
        "epoch": 0,
        "history": [],
        "best_val": -1.0,
        "seconds": 0.0,
        "hardware": hardware(device),
        "init": str(init) if init else None,
    }

    if ck is not None:
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        torch.set_rng_state(ck["rng"])
        if device == "cuda" and "cuda_rng" in ck:
            torch.cuda.set_rng_state(ck["cuda_rng"])
        state = ck["state"]
        log.info(f"resumed from epoch {state['epoch']}")
    log.info(
        f"{cfg.arch}: {n_params(model):,} parameters, {len(x_train)} train / {len(x_val)} val images, "
        f"{device}, {torch.get_num_threads()} threads, bf16 {use_bf16(device)}"
    )

    last_epoch = min(cfg.epochs, state["epoch"] + stop_after) if stop_after else cfg.epochs
    for epoch in range(state["epoch"], last_epoch):
        t0 = time.time()
        if deadline and state["history"] and t0 + state["history"][-1]["seconds"] > deadline:
            log.info(f"stopped before epoch {epoch + 1}: it would end after the deadline")
            break
        model.train()
        perm = torch.randperm(len(x_train)).to(device)
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", mininterval=5)
        for s in bar:
            idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            yb = y_train[idx]
            logits, loss = step(model, opt, cfg, x_train[idx], t_train[idx], device)
            sched.step()
            ema.update_parameters(model)
            seen += len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            loss_sum += loss.item() * len(yb)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
        val_raw = accuracy(model, x_val, y_val, device)
        val_ema = accuracy(ema.module, x_val, y_val, device)
        state["seconds"] += time.time() - t0
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "val_acc": val_raw,
            "val_acc_ema": val_ema,
            "lr": sched.get_last_lr()[0],
            "seconds": time.time() - t0,
        }
        state["history"].append(row)
        log.info(json.dumps(row))
        if max(val_raw, val_ema) > state["best_val"]:
            state["best_val"] = max(val_raw, val_ema)
            weights = ema.module.state_dict() if val_ema >= val_raw else model.state_dict()
            save(
                {
                    "model": weights,
                    "config": asdict(cfg),
                    "epoch": epoch + 1,
                    "val_acc": state["best_val"],
                    "ema": val_ema >= val_raw,
                },
                out / "best.pt",
            )
        state["epoch"] = epoch + 1
        save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "rng": torch.get_rng_state(),
                "state": state,
                **({"cuda_rng": torch.cuda.get_rng_state()} if device == "cuda" else {}),
                "config": asdict(cfg),
            },
            last,
        )
        (out / "history.json").write_text(json.dumps({"config": asdict(cfg), **state}, indent=1))
    return state


@dataclass(frozen=True)
class RunOptions:
    """What the command line (add_arguments) changes about a run beside its config, as `run` takes it."""

    epochs: int = 0  # the config's epoch count instead (with a budget: the most)
    budget_minutes: float = 0  # the epoch count that fits this many minutes here
    stop_after: int = 0  # stop after this many epochs (resume later)
    init: Path | None = None  # start from these weights instead of the config's init_from run

    @classmethod
    def of(cls, args: argparse.Namespace) -> RunOptions:
        return cls(args.epochs, args.budget_minutes, args.stop_after, args.init)


def run(
    name: str,
    data_path: Path,
    out: Path | None = None,
    *,
    runs: Path | None = None,
    options: RunOptions = RunOptions(),
) -> tuple[dict, Path]:
    """Trains the named config into `out` (default <runs>/<name>), first the run it starts from
    (<runs>/<init_from>) when no `init` weights are given; returns the training state and the run folder."""
    runs = runs or settings.runs
    cfg = CONFIGS[name]
    epochs, budget_minutes, init = options.epochs, options.budget_minutes, options.init
    if epochs and not budget_minutes:
        cfg = replace(cfg, epochs=epochs)
    out = out or runs / name
    if init is None and cfg.init_from:
        # The first stage trains (or resumes, or finds complete) the run this one starts from.
        log.info(f"first stage: --config {cfg.init_from}")
        train(CONFIGS[cfg.init_from], data_path, runs / cfg.init_from)
        init = runs / cfg.init_from / "best.pt"
    elif init is None and cfg.init_onnx and not (out / "last.pt").exists():
        from training.emotion import distil  # distil -> ensemble -> export imports this module

        # Beside the run, not in it: export.earlier_stages follows `init` to the run it came from.
        init = distil.init_checkpoint(
            REPO / cfg.init_onnx, cfg.arch, data_path, out.with_name(out.name + "-init") / "best.pt"
        )
    state = train(cfg, data_path, out, options.stop_after, budget_minutes, max_epochs=epochs, init=init)
    log.info(f"best val accuracy {state['best_val']:.4f} after {state['seconds'] / 60:.1f} min of training")
    return state, out


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The training options, shared with the pipeline's command line."""
    ap.add_argument(
        "--config", default=SHIPPED, choices=sorted(CONFIGS), help=f"default {SHIPPED}, the shipped one"
    )
    ap.add_argument("--data", type=Path, default=settings.data / "fer2013" / "fer2013.npz")
    ap.add_argument(
        "--epochs", type=int, default=0, help="override the config's epoch count (with a budget: the most)"
    )
    ap.add_argument(
        "--budget-minutes",
        type=float,
        default=0,
        help="set the epoch count to what fits this many minutes on this hardware",
    )
    ap.add_argument("--init", type=Path, help="start from this best.pt (default: the config's init_from run)")
    ap.add_argument("--stop-after", type=int, default=0, help="stop after N epochs (resume later)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def parse_args(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """The command line, with torch's CPU threads set as it says."""
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--out", type=Path, help="run folder (default runs/<config>)")
    ap.add_argument(
        "--probe",
        action="store_true",
        help="only time this config here: seconds per epoch, epochs in --budget-minutes (or 120)",
    )
    args = parse_args(ap)
    if args.probe:
        probe(CONFIGS[args.config], args.data, args.budget_minutes or 120)
        return
    run(args.config, args.data, args.out, options=RunOptions.of(args))


if __name__ == "__main__":
    main()
