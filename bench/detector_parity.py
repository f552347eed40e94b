"""The faces the emotion service finds now against those it found at an earlier revision (before the
detect graph and CenterFace's float16-stored weights): every photo of ../shared/data/photos and every
face of faces_dev through EmotionPipeline.predict at both revisions, with their default settings.

    MOODTUNES_DATA=../shared/data python -m bench.detector_parity --before REV [--out DIR]

The earlier revision runs from a temporary git worktree in a child process. A face found before is
"kept" when a face found now overlaps it with IoU >= 0.5; "new" faces are those found now that match
none found before. Also: the largest change of a kept face's box (1 - IoU), the kept faces whose top
emotion changed, and the accuracy against the labels of the single-face pictures (the largest face's
emotion) at both revisions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench import report
from bench.ondevice_agreement import matched
from services.common.paths import REPO, data_dir

KEPT_IOU = 0.5

# Run in the revision's tree: its own pipeline on every picture, boxes and emotions as JSON on stdout.
CHILD = r"""
import io, json, sys
from pathlib import Path
import numpy as np
from PIL import Image
from services.emotion.pipeline import EmotionPipeline
from services.emotion.settings import EmotionSettings
data = Path(sys.argv[1])
pipeline = EmotionPipeline(EmotionSettings())
out = {}
for path in sorted((data / "photos").glob("*.jpg")):
    answer = pipeline.predict(path.read_bytes())
    out["photos/" + path.name] = [{"box": f.box.model_dump(), "emotion": f.emotion} for f in answer.faces]
npz = np.load(data / "faces_dev" / "muxspace_dev.npz")
for i, image in enumerate(npz["images"]):
    png = io.BytesIO()
    Image.fromarray(image).save(png, "PNG")
    answer = pipeline.predict(png.getvalue())
    out[f"faces_dev/{i}"] = [{"box": f.box.model_dump(), "emotion": f.emotion} for f in answer.faces]
print(json.dumps(out))
"""


def faces_at(tree: Path, data: Path) -> dict[str, list[dict[str, Any]]]:
    env = {**os.environ, "PYTHONPATH": str(tree), "ORT_DISABLE_TELEMETRY": "1"}
    run = subprocess.run(  # noqa: PLW1510 (the return code is checked below)
        [sys.executable, "-c", CHILD, str(data)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise SystemExit(f"{tree}: {run.stderr[-3000:]}")
    return json.loads(run.stdout.splitlines()[-1])


def labels(data: Path) -> dict[str, str]:
    """The labelled emotion of each single-face picture: the photos' labels.csv, faces_dev's labels."""
    out = {}
    with (data / "photos" / "labels.csv").open() as f:
        for row in csv.DictReader(f):
            if row["n_faces_approx"] == "1":
                out[f"photos/{row['filename']}"] = row["emotion"]
    npz = np.load(data / "faces_dev" / "muxspace_dev.npz")
    for i, label in enumerate(npz["labels"]):
        out[f"faces_dev/{i}"] = str(npz["class_names"][label])
    return out


def accuracy(answers: dict[str, list[dict]], truth: dict[str, str], kind: str) -> float:
    """Share of the set's labelled pictures whose largest face reads as the label (none found: wrong)."""
    names = [n for n in truth if n.startswith(f"{kind}/")]
    right = sum(bool(answers[n]) and answers[n][0]["emotion"] == truth[n] for n in names)
    return round(right / len(names), 4)


def compare(before: dict[str, list[dict]], now: dict[str, list[dict]]) -> dict[str, Any]:
    sets: dict[str, dict[str, Any]] = {}
    changed = []
    for name, old in before.items():
        new = now[name]
        row = sets.setdefault(
            name.split("/")[0],
            {"pictures": 0, "faces_before": 0, "faces_now": 0, "kept": 0, "lost": 0, "new": 0},
        )
        row["pictures"] += 1
        row["faces_before"] += len(old)
        row["faces_now"] += len(new)
        pairs = [(a, b, score) for a, b, score in matched(old, new) if score >= KEPT_IOU]
        row["kept"] += len(pairs)
        row["lost"] += len(old) - len(pairs)
        row["new"] += len(new) - len(pairs)
        row.setdefault("largest_box_change", 0.0)
        row["largest_box_change"] = round(max([row["largest_box_change"], *(1 - s for _, _, s in pairs)]), 4)
        row["top_emotion_changed"] = row.get("top_emotion_changed", 0) + sum(
            a["emotion"] != b["emotion"] for a, b, _ in pairs
        )
        if len(pairs) != len(old) or len(new) != len(old):
            changed.append({"picture": name, "faces_before": len(old), "faces_now": len(new)})
    return {"sets": sets, "pictures_with_other_faces": changed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="the earlier revision (a commit)")
    ap.add_argument("--out", type=Path, default=report.REPORTS / "ondevice")
    args = ap.parse_args(argv)
    data = data_dir()
    if not (data / "photos").is_dir():
        raise SystemExit(f"no data at {data}: set MOODTUNES_DATA to ../shared/data")
    before_rev = subprocess.run(
        ["git", "rev-parse", "--short", args.before], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), before_rev], cwd=REPO, check=True)
        try:
            before = faces_at(tree, data)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)
    now = faces_at(REPO, data)
    result = {"before": before_rev, **compare(before, now)}
    truth = labels(data)
    result["accuracy"] = {
        kind: {"before": accuracy(before, truth, kind), "now": accuracy(now, truth, kind)}
        for kind in ("photos", "faces_dev")
    }
    report.write(
        args.out,
        "detector_parity",
        result,
        title="Faces found by the emotion service: now against an earlier revision",
        command=f"MOODTUNES_DATA=../shared/data python -m bench.detector_parity --before {before_rev}",
        notes=[(__doc__ or "").split("\n\n")[2].strip().replace("\n", " ")],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
