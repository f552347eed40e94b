"""Compares training runs on the same footing: each run's best weights are exported to ONNX and evaluated.

    python -m training.emotion.compare runs/gpu/vgg7-160 runs/gpu/original-130 ... \\
        --out reports/emotion/experiments.md

Writes the JSON and its Markdown (bench/report.py) with each run's command, epochs, hardware and time,
size and accuracies. Runs are ranked by validation accuracy, the split that chooses; test is reported,
not used.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench import report
from training.emotion import evaluate, export
from training.emotion.model import n_params
from training.settings import settings


def compare(runs: list[Path], data: Path) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            model, ck = export.load_run(run)
            onnx_path = Path(tmp) / f"{run.name}.onnx"
            export.to_onnx(model, onnx_path, run.name)
            r = evaluate.evaluate(onnx_path, data, Path(tmp) / run.name)
            history = json.loads((run / "history.json").read_text())
            rows.append(
                {
                    "run": run.name,
                    "command": export.train_command(ck["config"]),
                    "epochs": history["epoch"],
                    "hardware": history.get("hardware", "unknown"),
                    "minutes": round(history["seconds"] / 60, 1),
                    "parameters": n_params(model),
                    "onnx_mb": round(onnx_path.stat().st_size / 1e6, 1),
                    "val_single": r["val"]["single"]["accuracy"],
                    "test_single": r["test"]["single"]["accuracy"],
                    "test_flip": r["test"]["flip"]["accuracy"],
                    "ferplus_val": r.get("ferplus_val", {}).get("single"),
                    "ferplus_test": r.get("ferplus_test", {}).get("single"),
                }
            )
    return sorted(rows, key=lambda row: -row["val_single"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="run folders (best.pt + history.json)")
    ap.add_argument("--data", type=Path, default=settings.data / "fer2013" / "fer2013.npz")
    ap.add_argument("--out", type=Path, default=settings.reports / "emotion" / "experiments.md")
    ap.add_argument("--note", default="", help="a sentence for the report (how the runs were made)")
    ap.add_argument(
        "--add",
        action="store_true",
        help="keep the report's other runs and sections (a run of the same name is replaced)",
    )
    args = ap.parse_args()
    rows = compare(args.runs, args.data)
    notes = ["Ranked by validation accuracy (the split that chooses); test is reported only.", args.note]
    extra: dict = {}
    saved = args.out.with_suffix(".json")
    if args.add and saved.exists():
        extra = json.loads(saved.read_text())
        meta = extra.pop(report.META, {})
        notes = meta.get("notes", []) + ([args.note] if args.note else [])
        names = {r["run"] for r in rows}
        rows = sorted(
            [r for r in extra.pop("runs", []) if r["run"] not in names] + rows, key=lambda r: -r["val_single"]
        )
    report.write(
        args.out.parent,
        args.out.stem,
        {"runs": rows, **extra},
        title="Emotion model experiments",
        command="python -m training.emotion.compare <run folders> [--add]",
        notes=[n for n in notes if n],
    )


if __name__ == "__main__":
    main()
