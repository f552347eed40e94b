"""The pipeline's gate: a model replaces the shipped one only when it beats it on the same val faces, or
when forced; whatever happens, the model folder never holds a half-written or mixed set."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest
import torch

from services.common.paths import REPO
from services.emotion.classifier import EmotionClassifier, card_path
from training.emotion import data as fer
from training.emotion import pipeline
from training.emotion.evaluate import fingerprint
from training.emotion.pipeline import Ship

SHIPPED_MODEL = REPO / "services" / "emotion" / "model"
SHIPPED_REPORTS = ("emotion", "emotion-int8")


def tree_hashes(*roots: Path) -> dict[str, str]:
    """Every file under the roots (hidden ones too) and its content hash."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for root in roots
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def shipped_copy(root: Path) -> Ship:
    """A copy of the shipped model folder and its two report folders, to promote into."""
    shutil.copytree(SHIPPED_MODEL, root / "model")
    for name in SHIPPED_REPORTS:
        shutil.copytree(REPO / "reports" / name, root / "reports" / name)
    return Ship(model_dir=root / "model", reports=root / "reports")


@dataclass(frozen=True)
class SmokeRun:
    run: Path
    ship: Ship  # a shipped copy whose card claims every val face of the synthetic data right
    before: dict[str, str]
    promoted: bool
    val: float


@pytest.fixture(scope="module")
def smoke(synthetic_fer: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmokeRun]:
    """`--config smoke --promote auto` on the synthetic data, against a shipped model that scored 100% on
    the same val faces: the whole pipeline runs, the gate must keep the shipped model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("promotion")
    ship = shipped_copy(root / "shipped")
    for card in (card_path(ship.float_model), card_path(ship.int8_model)):
        data = json.loads(card.read_text())
        data["metrics"].update(val_single=1.0, val_data=fingerprint(fer.load(synthetic_fer).subset("val")))
        card.write_text(json.dumps(data, indent=2) + "\n")
    before = tree_hashes(ship.model_dir, ship.reports)
    promoted = pipeline.run_pipeline("smoke", synthetic_fer, ship, "auto", runs=root / "runs")
    run = root / "runs" / "smoke"
    val = json.loads(card_path(run / "model" / "emotion.int8.onnx").read_text())["metrics"]["val_single"]
    yield SmokeRun(run, ship, before, promoted, val)
    torch.set_num_threads(threads)


@pytest.mark.timeout(600)
def test_a_worse_model_is_not_promoted_and_the_shipped_files_stay_byte_identical(smoke: SmokeRun) -> None:
    assert not smoke.promoted
    assert tree_hashes(smoke.ship.model_dir, smoke.ship.reports) == smoke.before
    # The run itself is complete in its own folder: model, int8 copy, cards and reports.
    for name in ("emotion.onnx", "card.json", "emotion.int8.onnx", "emotion.int8.card.json"):
        assert (smoke.run / "model" / name).stat().st_size > 0, name
    for name in SHIPPED_REPORTS:
        for f in pipeline.REPORT_FILES:
            assert (smoke.run / "reports" / name / f).stat().st_size > 0, (name, f)


@pytest.mark.timeout(600)
def test_the_real_shipped_model_is_kept_against_a_run_on_other_data(
    smoke: SmokeRun, caplog: pytest.LogCaptureFixture
) -> None:
    """The gate pointed at the repository's own model and reports: the synthetic run's val accuracy
    means nothing against FER2013's, so it must not replace anything there."""
    ship = Ship(model_dir=SHIPPED_MODEL, reports=REPO / "reports")
    before = tree_hashes(SHIPPED_MODEL, *(REPO / "reports" / n for n in SHIPPED_REPORTS))
    caplog.set_level(logging.INFO, logger="moodtunes.training")
    assert not pipeline.promote(ship, smoke.run / "model", smoke.run / "reports", True, "auto", "test")
    assert "not comparable" in caplog.text
    assert tree_hashes(SHIPPED_MODEL, *(REPO / "reports" / n for n in SHIPPED_REPORTS)) == before


@pytest.mark.timeout(600)
def test_force_promotes_into_the_model_dir_and_the_service_can_load_it(
    smoke: SmokeRun, tmp_path: Path
) -> None:
    ship = shipped_copy(tmp_path)
    assert pipeline.promote(ship, smoke.run / "model", smoke.run / "reports", True, "force", "cmd --force")
    new = smoke.run / "model"
    for name in ("emotion.onnx", "emotion.int8.onnx"):
        assert (ship.model_dir / name).read_bytes() == (new / name).read_bytes(), name
    card = json.loads(card_path(ship.int8_model).read_text())
    assert card["promotion"]["reason"].startswith("forced (--promote force)")
    assert card["promotion"]["command"] == "cmd --force"
    assert card["metrics"]["report"] == str((ship.reports / "emotion-int8" / "report.md").resolve())
    assert card["metrics"]["val_single"] == smoke.val
    for name in SHIPPED_REPORTS:
        for f in pipeline.REPORT_FILES:
            got = (ship.reports / name / f).read_bytes()
            assert got == (smoke.run / "reports" / name / f).read_bytes(), (name, f)
    assert not [p for p in ship.model_dir.iterdir() if p.name.startswith(pipeline.STAGING_PREFIX)]
    # What the emotion service does at start-up with this folder.
    classifier = EmotionClassifier(ship.int8_model, card_path(ship.int8_model))
    assert classifier.name.startswith(card["name"])


@pytest.mark.timeout(600)
def test_a_failure_while_staging_leaves_the_model_dir_as_it_was(
    smoke: SmokeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ship = shipped_copy(tmp_path)
    before = tree_hashes(ship.model_dir, ship.reports)
    real_copy, copies = shutil.copyfileobj, []

    def failing_copy(src: BinaryIO, dst: BinaryIO) -> None:
        copies.append(src)
        if len(copies) == 3:
            raise OSError("disk full")
        real_copy(src, dst)

    monkeypatch.setattr(pipeline.shutil, "copyfileobj", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        pipeline.promote(ship, smoke.run / "model", smoke.run / "reports", True, "force", "test")
    assert tree_hashes(ship.model_dir, ship.reports) == before  # staged files removed too


@pytest.mark.timeout(600)
def test_a_signal_during_the_renames_waits_until_the_new_set_is_complete(
    smoke: SmokeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ship = shipped_copy(tmp_path)
    new = smoke.run / "model"
    seen: list[bool] = []

    def on_term(signum: int, frame: object) -> None:
        seen.append(
            all(
                (ship.model_dir / n).read_bytes() == (new / n).read_bytes()
                for n in ("emotion.onnx", "emotion.int8.onnx")
            )
        )
        raise KeyboardInterrupt

    real_replace, renames = Path.replace, []

    def replace_and_signal(self: Path, target: Path) -> Path:
        renames.append(target)
        if len(renames) == 1:  # SIGTERM arrives right after the first file is in place
            os.kill(os.getpid(), signal.SIGTERM)
        return real_replace(self, target)

    previous = signal.signal(signal.SIGTERM, on_term)
    monkeypatch.setattr(Path, "replace", replace_and_signal)
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.promote(ship, new, smoke.run / "reports", True, "force", "test")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [True]  # the handler ran only once every file was in place
    assert len(renames) == 2 * (2 + len(pipeline.REPORT_FILES))  # two models, two cards, their reports


@pytest.mark.timeout(600)
def test_a_killed_run_leaves_nothing_in_the_model_dir(synthetic_fer: Path, tmp_path: Path) -> None:
    """The command as compose runs it (TRAINING_MODEL_DIR, --promote force), stopped with SIGTERM as
    `docker stop` does, once training has written its checkpoint."""
    ship = shipped_copy(tmp_path / "shipped")
    before = tree_hashes(ship.model_dir, ship.reports)
    env = {
        **os.environ,
        "TRAINING_MODEL_DIR": str(ship.model_dir),
        "TRAINING_REPORTS": str(ship.reports),
        "TRAINING_RUNS": str(tmp_path / "runs"),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "training.emotion.pipeline", "--config", "smoke", "--promote", "force"]
    proc = subprocess.Popen([*cmd, "--data", str(synthetic_fer), "--threads", "1"], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "runs" / "smoke" / "last.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "training never wrote a checkpoint"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) != 0
    finally:
        proc.kill()
        proc.wait()
    assert tree_hashes(ship.model_dir, ship.reports) == before


def test_the_gate(tmp_path: Path) -> None:
    new = {"metrics": {"val_single": 0.70, "val_data": "sha256:a"}}
    shipped = {"metrics": {"val_single": 0.69, "val_data": "sha256:a"}}
    assert pipeline.decide(new, shipped, "auto") == (True, "val 70.00% beats the shipped 69.00%")
    assert not pipeline.decide(shipped, new, "auto")[0]
    assert not pipeline.decide(new, new, "auto")[0]  # a tie keeps the shipped model
    assert not pipeline.decide(new, shipped, "never")[0]
    ok, reason = pipeline.decide(shipped, new, "force")
    assert ok and "forced" in reason
    other = {"metrics": {"val_single": 0.10, "val_data": "sha256:b"}}
    ok, reason = pipeline.decide(new, other, "auto")
    assert not ok and reason.startswith("not comparable")
    assert not pipeline.decide(new, {"name": "no metrics"}, "auto")[0]
    assert pipeline.decide(new, None, "auto")[0]  # nothing shipped yet


def test_ship_targets_come_from_the_config_files_and_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline.settings, "model_dir", tmp_path / "models")
    shipped = pipeline.ship_of("vgg7-tuned", None, None)
    assert shipped.model_dir == tmp_path / "models" and shipped.served.name == "emotion.int8.onnx"
    baseline = pipeline.ship_of("original", None, None)
    assert baseline.served == REPO / "models" / "baseline" / "baseline.onnx"
    assert baseline.report == "emotion-baseline" and not baseline.quantize
    assert baseline.float16_weights and not shipped.float16_weights  # only the reference kept in git
    assert pipeline.ship_of("original", tmp_path, None).model_dir == tmp_path  # the flag wins
