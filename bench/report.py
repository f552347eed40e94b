"""Where a benchmark's results go: OUT/NAME.json, every figure, written as soon as they are measured (so a
failure while rendering loses none), and OUT/NAME.md, the same for a person to read, also printed."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(out: Path, name: str, result: object) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")


def write_markdown(out: Path, name: str, text: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text)
    print(text)
