"""The emotion model's one pipeline: train -> export -> evaluate -> quantize -> evaluate int8 -> promote
(each evaluated model is also calibrated: training/emotion/calibrate.py).

    python -m training.emotion.pipeline --config vgg7-tuned             # the shipped recipe: make train
    python -m training.emotion.pipeline --config smoke --promote force  # a quick model, shipped anyway
    python -m training.emotion.pipeline --quantize-shipped              # a new int8 copy: make quantize
    python -m training.emotion.pipeline --config original               # the baseline: make train-baseline

Every step writes under runs/<config>/: the checkpoints (train.py; rerunning resumes), model/ (the ONNX
export, its int8 copy and their cards) and reports/ (the evaluation of each). Nothing outside that
folder changes before the last step, promotion, which copies the model files, their cards and their
reports over the shipped ones (TRAINING_MODEL_DIR, default services/emotion/model/; TRAINING_REPORTS,
default reports/; configs/<config>.toml's [ship] table can send them elsewhere):

    --promote auto    (default) only when the model the service would run (the int8 copy) scores higher
                      on FER2013 val than the shipped one's card says, measured on the same val faces;
                      otherwise it logs why and keeps the shipped model
    --promote force   always; the promoted card records that it was forced
    --promote never   never

The emotion service loads the new model on its next start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from services.emotion.classifier import card_path
from training.emotion import calibrate, evaluate, export, quantize, train
from training.logs import configure, logger
from training.settings import REPO, settings

log = logger("pipeline")
REPORT_FILES = (
    "report.md",
    "metrics.json",
    "confusion_val.png",
    "confusion_test.png",
    *calibrate.REPORT_FILES,
)
STAGING_PREFIX = ".promoting-"  # beside each file it replaces, on the same file system


@dataclass(frozen=True)
class Ship:
    """Where a config's model goes when promoted: <model_dir>/<stem>.onnx and its int8 copy, their cards,
    and their reports in <reports>/<report> and <reports>/<report>-int8."""

    model_dir: Path
    reports: Path
    stem: str = "emotion"
    report: str = "emotion"
    quantize: bool = True
    # Weights stored as float16 (export.half_weights): for a float model kept in git only as a reference.
    float16_weights: bool = False

    @property
    def float_model(self) -> Path:
        return self.model_dir / f"{self.stem}.onnx"

    @property
    def int8_model(self) -> Path:
        return self.model_dir / f"{self.stem}.int8.onnx"

    @property
    def served(self) -> Path:
        """The model whose val accuracy decides: the one the service runs."""
        return self.int8_model if self.quantize else self.float_model


def ship_of(config: str, model_dir: Path | None, reports: Path | None) -> Ship:
    """The config file's [ship] table (paths relative to the repository), under the flags."""
    table = tomllib.loads((train.CONFIG_DIR / f"{config}.toml").read_text()).get("ship", {})
    return Ship(
        model_dir=model_dir or (REPO / table["model_dir"] if "model_dir" in table else settings.model_dir),
        reports=reports or settings.reports,
        stem=table.get("stem", "emotion"),
        report=table.get("report", "emotion"),
        quantize=table.get("quantize", True),
        float16_weights=table.get("weights") == "float16",
    )


def shown(path: Path) -> str:
    """A path as cards and reports cite it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def decide(new_card: dict, shipped_card: dict | None, mode: str) -> tuple[bool, str]:
    """Whether the new model replaces the shipped one, and why."""
    new = new_card["metrics"]
    if mode == "never":
        return False, "--promote never: the shipped model stays"
    if mode == "force":
        if shipped_card is None:
            return True, "forced (--promote force); no model was shipped"
        return True, (
            f"forced (--promote force): val {new['val_single']:.2%} replaces the shipped "
            f"{shipped_card.get('metrics', {}).get('val_single', float('nan')):.2%}"
        )
    if shipped_card is None:
        return True, f"no model was shipped: val {new['val_single']:.2%}"
    old = shipped_card.get("metrics", {})
    if "val_single" not in old:
        return False, "the shipped card has no val accuracy to beat; --promote force replaces it anyway"
    if old.get("val_data") != new["val_data"]:
        return False, (
            f"not comparable: the shipped card was measured on other val faces ({old.get('val_data')}, "
            f"this run {new['val_data']}); --promote force replaces it anyway"
        )
    if new["val_single"] > old["val_single"]:
        return True, f"val {new['val_single']:.2%} beats the shipped {old['val_single']:.2%}"
    return False, (
        f"val {new['val_single']:.2%} does not beat the shipped {old['val_single']:.2%}; "
        "--promote force replaces it anyway"
    )


def shipped_bytes(card: Path, report_dir: Path, reason: str, command: str) -> bytes:
    """The card as it will read once shipped: its report where the report will be, how it got there."""
    data = json.loads(card.read_text())
    data["metrics"]["report"] = shown(report_dir / "report.md")
    data["promotion"] = {"reason": reason, "command": command}
    return (json.dumps(data, indent=2) + "\n").encode()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM (Ctrl-C, `docker stop`) that arrive inside the block take effect at its end.
    Python-level, not a thread signal mask: torch's and ONNX Runtime's threads would receive a masked
    signal and Python would still run its handler in the middle of the block."""
    pending: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        for signum in pending:
            signal.raise_signal(signum)


def replace_all(files: dict[Path, bytes | Path]) -> None:
    """Writes each destination from bytes or a file: every new file is first written in full beside its
    destination, then all are renamed over the old ones with Ctrl-C and SIGTERM deferred, so that an
    interruption leaves the old set or the new one, never a mix; a failure before the renames leaves no
    staged file behind."""
    for folder in {dst.parent for dst in files}:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"{STAGING_PREFIX}*"):  # left by a run killed with SIGKILL
            stale.unlink(missing_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for dst, src in files.items():
            tmp = dst.with_name(f"{STAGING_PREFIX}{os.getpid()}-{dst.name}")
            staged.append((tmp, dst))
            with tmp.open("wb") as f:
                if isinstance(src, bytes):
                    f.write(src)
                else:
                    with src.open("rb") as s:
                        shutil.copyfileobj(s, f)
                f.flush()
                os.fsync(f.fileno())
        with signals_deferred():
            for tmp, dst in staged:
                tmp.replace(dst)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def promote(ship: Ship, model: Path, report: Path, with_float: bool, mode: str, command: str) -> bool:
    """Step 6: the gate, then the replacement. `model`: the run's model folder, `report`: its reports."""
    new_served = model / ship.served.name
    shipped = card_path(ship.served)
    decision, reason = decide(
        json.loads(card_path(new_served).read_text()),
        json.loads(shipped.read_text()) if shipped.exists() else None,
        mode,
    )
    if not decision:
        log.info(f"kept the shipped model {shown(ship.served)}: {reason}")
        return False
    names = [(ship.float_model, ship.report)] if with_float else []
    if ship.quantize:
        names.append((ship.int8_model, f"{ship.report}-int8"))
    files: dict[Path, bytes | Path] = {}
    for dst, report_name in names:
        report_dir = ship.reports / report_name
        files[dst] = model / dst.name
        files[card_path(dst)] = shipped_bytes(card_path(model / dst.name), report_dir, reason, command)
        files.update({report_dir / f: report / report_name / f for f in REPORT_FILES})
    replace_all(files)
    log.info(f"promoted into {shown(ship.model_dir)} and {shown(ship.reports)}: {reason}")
    return True


def run_pipeline(
    config: str,
    data: Path,
    ship: Ship,
    mode: str = "auto",
    runs: Path | None = None,
    quantize_shipped: bool = False,
    options: train.RunOptions = train.RunOptions(),
) -> bool:
    """Steps 1-6 for one config; True when the new model was promoted."""
    runs = runs or settings.runs
    command = f"python -m training.emotion.pipeline --config {config} --promote {mode}"
    if quantize_shipped:
        command += " --quantize-shipped"
        ship = replace(ship, quantize=True)
        run = runs / f"quantize-{ship.stem}"
        model, report = run / "model", run / "reports"
        model.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ship.float_model, model / ship.float_model.name)
        shutil.copyfile(card_path(ship.float_model), card_path(model / ship.float_model.name))
    else:
        # 1. train (resumes from runs/<config>/last.pt), 2. export, 3. evaluate.
        state, run = train.run(config, data, runs=runs, options=options)
        planned = json.loads((run / "history.json").read_text())["config"]["epochs"]
        if state["epoch"] < planned:
            log.info(f"stopped after epoch {state['epoch']} of {planned}; rerun the same command to continue")
            return False
        model, report = run / "model", run / "reports"
        onnx_path = model / ship.float_model.name
        export.export_run(run, onnx_path, data, float16_weights=ship.float16_weights)
        r = evaluate.evaluate(onnx_path, data, report / ship.report)
        evaluate.add_to_card(card_path(onnx_path), r, report / ship.report / "report.md")
        calibrate.calibrate(onnx_path, data, report / ship.report, card_path(onnx_path))
        log.info(f"float: {json.dumps(evaluate.summary(r))}")
    if ship.quantize:
        # 4. quantize, 5. evaluate the int8 copy.
        int8 = model / ship.int8_model.name
        quantize.quantize_model(model / ship.float_model.name, int8, data)
        r = evaluate.evaluate(int8, data, report / f"{ship.report}-int8")
        evaluate.add_to_card(card_path(int8), r, report / f"{ship.report}-int8" / "report.md")
        calibrate.calibrate(int8, data, report / f"{ship.report}-int8", card_path(int8))
        log.info(f"int8: {json.dumps(evaluate.summary(r))}")
    # 6. promote.
    return promote(ship, model, report, not quantize_shipped, mode, command)


def main() -> None:
    configure()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_arguments(ap)
    ap.add_argument("--promote", choices=("auto", "force", "never"), default="auto")
    ap.add_argument("--model-dir", type=Path, help="where a promoted model goes (TRAINING_MODEL_DIR)")
    ap.add_argument("--reports", type=Path, help="where a promoted model's reports go (TRAINING_REPORTS)")
    ap.add_argument(
        "--quantize-shipped",
        action="store_true",
        help="no training: quantize the shipped float model again (into runs/quantize-<stem>/)",
    )
    args = train.parse_args(ap)
    ship = ship_of(args.config, args.model_dir, args.reports)
    options = train.RunOptions.of(args)
    run_pipeline(
        args.config, args.data, ship, args.promote, quantize_shipped=args.quantize_shipped, options=options
    )


if __name__ == "__main__":
    main()
