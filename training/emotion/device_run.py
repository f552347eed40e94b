"""One device call: several diverse teachers trained at once on one GPU, distilled into one student, which is
exported (float and int8) with its metrics. Made for a lent H100/H200 and a call of at most 9 minutes.

Here, once (the data and the packages the device lacks, into device-data/, which git ignores):

    make device-data        # = python -m training.emotion.device_run pack + pip download of wheels

Then, from a session with a device (the tool copies the working tree; `carry` brings device-data):

    run(command="make train-device", carry=["device-data"], timeout_s=600)

    make train-device       # python3 -m training.emotion.device_run --out $OUT (device-data/fer2013.npz)

What it does, against one wall clock (--minutes, default 9, of which the last ~90 s are kept for the end):
1. teachers: TEACHERS (seeds, two architectures and a wider one, with and without FER+ vote shares),
   each in its own process, all at once on the one GPU, each with a deadline;
2. their soft targets for the train split: every finished teacher and the two models we ship today
   (the shipped vgg7-tuned and the baseline original-130, from their ONNX graphs), each with mirror
   averaging, mixed with equal weights (log-probabilities), written as teachers.npz (distil.py's format);
3. the student: vgg7 from the shipped model's weights, trained on those targets plus FER+ vote shares
   until its deadline;
4. export: emotion.onnx, emotion.int8.onnx and their cards (training/emotion/export.py and quantize.py),
   val metrics (FER2013 val and FER+ val, official majority) for every teacher, the mix and the student.

It brings back at most 8 files under --out, each well under 16 MB: emotion.onnx, emotion.int8.onnx,
card.json, emotion.int8.card.json, teachers.npz, metrics.json, log.txt. The test split is not carried
(pack leaves it out): FER2013 test, faces_dev and the promotion gate run here afterwards:

    python -m training.emotion.device_run adopt FOLDER   # the call's files_at: evaluated, then the gate

`--tiny` runs the same steps in seconds on a CPU (tests/training/test_device_run.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from services.common.contracts import EMOTIONS
from training.emotion import data as fer
from training.logs import configure, logger
from training.settings import REPO, settings

log = logger("device_run")

SHIPPED = REPO / "services" / "emotion" / "model" / "emotion.onnx"
BASELINE = REPO / "models" / "baseline" / "baseline.onnx"
RESERVE_S = 90  # the end of the call: targets, export, quantization, metrics, the copy to --out


@dataclass(frozen=True)
class Teacher:
    name: str
    arch: str
    ferplus_weight: float
    seed: int
    share: float = 1.0  # of the teachers' time budget: the smaller models get through more epochs


# Diverse on purpose: two architectures and a wider one, FER2013 labels alone and blended with FER+.
TEACHERS = (
    Teacher("vgg7-fp-s1", "vgg7", 0.5, 1),
    Teacher("vgg7-s2", "vgg7", 0.0, 2),
    Teacher("original-fp-s1", "original", 0.5, 1),
    Teacher("original-s2", "original", 0.2, 2),
    Teacher("vgg7-wide-fp-s3", "vgg7-wide", 0.5, 3),
)


# ---------------------------------------------------------------- pack (here) and unpack (there)


def pack(data: Path, out: Path, quality: int = 90) -> dict:
    """device-data/fer2013.npz: the train faces as WebP (lossy, `quality`: mean error about 1.5 grey
    levels, an augmentation the training already does more of), the val faces losslessly (selection
    sees the real faces), FER+ votes and labels; no test faces. 82 MB of pixels -> about 32 MB."""
    ds = fer.load(data)
    keep = ds.split != "test"
    blobs, offsets = [], [0]
    for image, split in zip(ds.images[keep], ds.split[keep], strict=True):
        q = quality if split == "train" else 101  # 101: lossless
        ok, buf = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, q])
        if not ok:
            raise RuntimeError("WebP encoding failed")
        blobs.append(buf.tobytes())
        offsets.append(offsets[-1] + len(blobs[-1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    votes = {} if ds.ferplus_votes is None else {"ferplus_votes": ds.ferplus_votes[keep]}
    np.savez(
        out,
        webp=np.frombuffer(b"".join(blobs), np.uint8),
        offsets=np.asarray(offsets, np.int64),
        labels=ds.labels[keep],
        split=ds.split[keep],
        class_names=np.array(EMOTIONS),
        **votes,
    )
    info = {"faces": int(keep.sum()), "bytes": out.stat().st_size, "train_quality": quality}
    log.info(json.dumps(info))
    return info


def unpack(packed: Path, out: Path) -> Path:
    """The packed faces decoded into our fer2013.npz layout (train.py and evaluate.py read it)."""
    with np.load(packed) as z:
        blob, offsets = z["webp"], z["offsets"]
        faces = [
            cv2.imdecode(blob[offsets[i] : offsets[i + 1]], cv2.IMREAD_GRAYSCALE)
            for i in range(len(offsets) - 1)
        ]
        if any(f is None for f in faces):
            raise ValueError(f"{packed}: a face does not decode")
        images = np.stack([f for f in faces if f is not None])
        extra = {"ferplus_votes": z["ferplus_votes"]} if "ferplus_votes" in z.files else {}
        np.savez(
            out, images=images, labels=z["labels"], split=z["split"], class_names=z["class_names"], **extra
        )
    return out


# ---------------------------------------------------------------- the call


def _train_teacher(
    cfg: dict, data: str, out: str, deadline: float, threads: int, log: str, tiny: bool = False
) -> None:
    """A teacher's process: its output goes to its own log; its epoch count fits the time left."""
    import torch

    from training.emotion import train

    sys.stdout = sys.stderr = open(log, "w", buffering=1)  # noqa: SIM115 (the process's own log)
    configure()  # a spawned process starts without the parent's logging
    torch.set_num_threads(threads)
    c = train.Config(**cfg)
    minutes = 0 if tiny else (deadline - time.time()) / 60  # tiny: its one epoch, no timing probe
    train.train(c, Path(data), Path(out), budget_minutes=minutes, max_epochs=c.epochs, deadline=deadline)


def teacher_configs(tiny: bool) -> dict[str, dict]:
    from training.emotion import train

    out = {}
    for t in TEACHERS[:2] if tiny else TEACHERS:
        cfg = train.Config(arch=t.arch, ferplus_weight=t.ferplus_weight, seed=t.seed, epochs=300)
        if tiny:
            cfg = replace(
                cfg, arch="original" if t.arch == "vgg7-wide" else t.arch, epochs=1, limit=120, batch_size=30
            )
        out[t.name] = asdict(cfg)
    return out


def mixed_targets(models: list, x: np.ndarray, device: str) -> np.ndarray:
    """Equal-weight mean of the models' mirror-averaged log-probabilities, batch by batch on `device`."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.no_grad():
        for i in range(0, len(x), 1024):
            xb = torch.from_numpy(x[i : i + 1024, None].astype(np.float32)).to(device)
            lp = torch.zeros(len(xb), len(EMOTIONS), device=device)
            for m in models:
                lp += (F.log_softmax(m(xb), 1) + F.log_softmax(m(xb.flip(3)), 1)) / 2
            out.append((lp / len(models)).cpu().numpy())
    z = np.concatenate(out)
    return z - np.logaddexp.reduce(z, axis=1, keepdims=True)


def gate_scores(logprobs: np.ndarray, val: fer.FerData) -> dict:
    from training.emotion import evaluate

    pred = logprobs.argmax(1)
    out = {"val": float((pred == val.labels).mean())}
    if val.ferplus_votes is not None:
        labels, keep = evaluate.ferplus_official(val.ferplus_votes)
        out["ferplus_val"] = float((pred[keep] == labels[keep]).mean()) if keep.any() else float("nan")
    return out


def device_run(
    packed: Path, out: Path, minutes: float = 9.0, tiny: bool = False, work: Path | None = None
) -> dict:
    import torch

    from training.emotion import distil, evaluate, export, quantize, train
    from training.emotion.export import load_run

    start = time.time()
    end = start + minutes * 60
    work = work or settings.runs / "device"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "log.txt", "a", buffering=1)  # noqa: SIM115 (open for the whole call)

    def say(msg: str) -> None:
        line = f"[{time.time() - start:6.1f} s] {msg}"
        log.info(line)
        log_file.write(line + "\n")

    device = "cuda" if torch.cuda.is_available() else "cpu"
    say(f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, torch {torch.__version__}")
    data = unpack(packed, work / "fer2013.npz")
    ds = fer.load(data)
    train_set, val = ds.subset("train"), ds.subset("val")
    say(f"data: {len(train_set)} train, {len(val)} val faces")

    # 1. teachers, all at once: each gets until 55% of the call (the student the rest).
    teachers_end = start + (minutes * 60 - RESERVE_S) * (0.55 if not tiny else 0.5)
    configs = teacher_configs(tiny)
    threads = max(1, (os.cpu_count() or 2) // len(configs)) if device == "cuda" else 1
    ctx = mp.get_context("spawn")
    procs = {}
    for name, cfg in configs.items():
        p = ctx.Process(
            target=_train_teacher,
            args=(cfg, str(data), str(work / name), teachers_end, threads, str(work / f"{name}.log"), tiny),
        )
        p.start()
        procs[name] = p
    for name, p in procs.items():
        p.join(max(1.0, end - RESERVE_S / 2 - time.time()))
        if p.is_alive():
            p.kill()
            say(f"teacher {name}: killed at the deadline")
    metrics: dict = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "teachers": {},
    }
    models = []
    for name in configs:
        if not (work / name / "best.pt").exists():
            say(f"teacher {name}: no checkpoint (see its log below)")
            log_file.write((work / f"{name}.log").read_text()[-2000:] + "\n")
            continue
        model, ck = load_run(work / name)
        history = json.loads((work / name / "history.json").read_text())
        model = model.to(device).eval()
        lp = mixed_targets([model], val.images, device)
        metrics["teachers"][name] = {
            "arch": ck["config"]["arch"],
            "ferplus_weight": ck["config"]["ferplus_weight"],
            "seed": ck["config"]["seed"],
            "epochs": history["epoch"],
            "planned_epochs": history["config"]["epochs"],
            "minutes": round(history["seconds"] / 60, 2),
            **gate_scores(lp, val),
        }
        models.append(model)
        say(f"teacher {name}: {json.dumps(metrics['teachers'][name])}")
    for name, path, arch in (("shipped", SHIPPED, "vgg7"), ("baseline", BASELINE, "original")):
        pick = train_set.images[: 2048 if not tiny else 64]
        model = distil.weights_from_onnx(path, arch, pick).to(device).eval()
        metrics["teachers"][name] = {
            "arch": arch,
            "from": str(path.relative_to(REPO)),
            **gate_scores(mixed_targets([model], val.images, device), val),
        }
        models.append(model)

    # 2. the mix's soft targets for the train split (distil.py's format).
    targets = out / "teachers.npz"
    lp_train = mixed_targets(models, train_set.images, device)
    distil.save_targets(
        targets,
        lp_train,
        {
            "teacher": "+".join(metrics["teachers"]),
            "members": ";".join(f"{k}=1" for k in metrics["teachers"]),
            "flip": "true",
            "train_data": evaluate.fingerprint(train_set),
            "n": len(train_set),
            "train_accuracy": float((lp_train.argmax(1) == train_set.labels).mean()),
        },
    )
    metrics["mix"] = gate_scores(mixed_targets(models, val.images, device), val)
    say(f"mix of {len(models)} teachers: {json.dumps(metrics['mix'])}")
    del models
    if device == "cuda":
        torch.cuda.empty_cache()

    # 3. the student, from the shipped weights.
    student_cfg = train.Config(
        arch="vgg7",
        epochs=60,
        lr=0.02,
        ferplus_weight=0.5,
        distil=str(targets.resolve()),
        distil_weight=0.7,
        distil_temperature=2.0,
        init_onnx=str(SHIPPED.relative_to(REPO)),
        seed=0,
    )
    if tiny:
        student_cfg = replace(student_cfg, epochs=1, limit=120, batch_size=30)
    init = distil.init_checkpoint(SHIPPED, "vgg7", data, work / "student-init" / "best.pt")
    student_end = end - RESERVE_S
    state = train.train(
        student_cfg,
        data,
        work / "student",
        budget_minutes=0 if tiny else max(0.05, (student_end - time.time()) / 60),
        max_epochs=student_cfg.epochs,
        init=init,
        deadline=student_end,
    )
    say(f"student: {state['epoch']} epochs, best val {state['best_val']:.4f}")

    # 4. export, quantize, metrics.
    onnx_path = out / "emotion.onnx"
    export.export_run(work / "student", onnx_path, data, name="moodtunes-vgg7-distil")
    int8 = out / "emotion.int8.onnx"
    quantize.quantize_model(onnx_path, int8, data)
    from training.emotion import calibrate

    for path in (onnx_path, int8):
        z = calibrate.logits(path, val.images)
        metrics["float" if path == onnx_path else "int8"] = gate_scores(z, val)
    metrics["student"] = {
        "epochs": state["epoch"],
        "history": state["history"],
        "config": asdict(student_cfg),
    }
    metrics["seconds"] = round(time.time() - start, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    say(f"done: float {json.dumps(metrics['float'])}, int8 {json.dumps(metrics['int8'])}")
    log_file.close()
    return metrics


def adopt(folder: Path, data: Path, mode: str = "auto") -> bool:
    """Here, after the call: the returned graphs evaluated on all of FER2013 (test included) and
    calibrated, then offered to the promotion gate like any pipeline run (pipeline.promote)."""
    from services.emotion.classifier import card_path
    from training.emotion import calibrate, evaluate, pipeline

    run = settings.runs / "device-adopted"
    model, report = run / "model", run / "reports"
    model.mkdir(parents=True, exist_ok=True)
    for name in ("emotion.onnx", "card.json", "emotion.int8.onnx", "emotion.int8.card.json"):
        shutil.copyfile(folder / name, model / name)
    for path, name in ((model / "emotion.onnx", "emotion"), (model / "emotion.int8.onnx", "emotion-int8")):
        r = evaluate.evaluate(path, data, report / name)
        evaluate.add_to_card(card_path(path), r, report / name / "report.md")
        calibrate.calibrate(path, data, report / name, card_path(path))
        log.info(f"{name}: {json.dumps(evaluate.summary(r))}")
    ship = pipeline.ship_of("vgg7-tuned", None, None)
    command = f"python -m training.emotion.device_run adopt {folder} --promote {mode}"
    return pipeline.promote(ship, model, report, True, mode, command)


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command")
    p = sub.add_parser("pack", help="here: the faces the call needs, into device-data/fer2013.npz")
    p.add_argument("--data", type=Path, default=settings.data / "fer2013" / "fer2013.npz")
    p.add_argument("--out", type=Path, default=REPO / "device-data" / "fer2013.npz")
    a = sub.add_parser("adopt", help="here: evaluate a call's returned graphs and offer them to the gate")
    a.add_argument("folder", type=Path, help="the call's files (the device tool's files_at)")
    a.add_argument("--data", type=Path, default=settings.data / "fer2013" / "fer2013.npz")
    a.add_argument("--promote", choices=("auto", "force", "never"), default="auto")
    ap.add_argument("--data", type=Path, default=REPO / "device-data" / "fer2013.npz", help="packed faces")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/device-out")))
    ap.add_argument("--minutes", type=float, default=9.0, help="the whole call, wall clock")
    ap.add_argument("--tiny", action="store_true", help="seconds on a CPU: the test's run")
    args = ap.parse_args()
    if args.command == "pack":
        pack(args.data, args.out)
        return
    if args.command == "adopt":
        adopt(args.folder, args.data, args.promote)
        return
    device_run(args.data, args.out, args.minutes, args.tiny)


if __name__ == "__main__":
    main()
