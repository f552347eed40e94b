"""The one renderer of the benchmarks' reports: a bench writes REPORTS/NAME.json, every figure it measured
and, under "report", its title, the command that made it, notes in prose and the plots it drew; this
module renders that JSON into NAME.md, so the Markdown never holds a figure the JSON lacks.

    python -m bench.report                      # re-renders every report under reports/
    python -m bench.report reports/load.json    # or only these

Rendering: prose first, then the figures in the JSON's order: a list of records or a mapping of records
becomes a table (nested records flattened into "outer inner" columns while they stay small), a mapping
of plain values a list, anything deeper a section of its own.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from services.common.paths import REPO

REPORTS = REPO / "reports"  # the committed reports; benches take --out for anywhere else
META = "report"
WIDE = 8  # a nested record with more fields than this gets a section of its own, not columns


def write_json(out: Path, name: str, result: object) -> None:
    """OUT/NAME.json as soon as the figures are measured, so a failure afterwards loses none."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=_plain) + "\n")


def write(
    out: Path,
    name: str,
    result: dict[str, Any],
    *,
    title: str,
    command: str,
    notes: Sequence[str] = (),
    plots: Sequence[str] = (),
) -> str:
    """OUT/NAME.json (the figures and their "report": title, command, notes, plots) and OUT/NAME.md
    rendered from it; returns the Markdown, which is also printed."""
    data = {META: {"title": title, "command": command, "notes": list(notes), "plots": list(plots)}}
    data |= {k: v for k, v in result.items() if k != META}
    write_json(out, name, data)
    text = render(json.loads((out / f"{name}.json").read_text()))
    (out / f"{name}.md").write_text(text)
    print(text)
    return text


def render(data: dict[str, Any]) -> str:
    meta = data.get(META, {})
    lines = [f"# {meta.get('title', 'Report')}", ""]
    if meta.get("command"):
        lines += [f"Command: `{meta['command']}`.", ""]
    for note in meta.get("notes", []):
        lines += [note, ""]
    lines += [f"![{Path(p).stem}]({p})\n" for p in meta.get("plots", [])]
    lines += _section({k: v for k, v in data.items() if k != META}, 2)
    return "\n".join(lines).rstrip() + "\n"


def _plain(value: object) -> object:
    """What json cannot write by itself (numpy numbers, paths)."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _scalars(value: object) -> bool:
    return isinstance(value, list) and all(_scalar(v) for v in value)


def _record(value: object) -> bool:
    return isinstance(value, dict) and any(_scalar(v) or _scalars(v) for v in value.values())


def fmt(value: object) -> str:
    """A cell: floats to four significant digits (the JSON keeps every digit), lists joined."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else ("yes" if value else "no")
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _flat(record: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """(columns, rest): plain values and small nested records as columns, anything larger set aside."""
    columns: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if (
            isinstance(value, dict)
            and len(value) <= WIDE
            and all(_scalar(v) or _scalars(v) for v in value.values())
        ):
            columns |= _flat(value, f"{name} ")[0]
        elif _scalar(value) or _scalars(value):
            columns[name] = value
        else:
            rest[name] = value
    return columns, rest


def _table(rows: dict[str, dict[str, Any]], first: str) -> tuple[list[str], dict[str, Any]]:
    flat = {name: _flat(row) for name, row in rows.items()}
    header = list(dict.fromkeys(c for columns, _ in flat.values() for c in columns))
    lines = [
        "| " + " | ".join([first, *header]) + " |",
        "|---" * (len(header) + 1) + "|",
        *(
            "| " + " | ".join([fmt(name), *(fmt(columns.get(c)) for c in header)]) + " |"
            for name, (columns, _) in flat.items()
        ),
        "",
    ]
    rest: dict[str, Any] = {}
    for key in dict.fromkeys(k for _, more in flat.values() for k in more):
        same = {name: more[key] for name, (_, more) in flat.items() if key in more}
        if len(same) > 1 and all(
            isinstance(v, dict) and all(map(_scalar, v.values())) for v in same.values()
        ):
            # The same mapping of plain values in every row: one table, a column per row.
            rest[key] = {inner: {name: v.get(inner) for name, v in same.items()} for inner in _keys(same)}
        else:
            rest |= {f"{name} {key}": value for name, value in same.items()}
    return lines, rest


def _keys(mappings: dict[str, dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for m in mappings.values() for k in m))


def _runs(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The items in order, alike records next to each other (the same fields: one per detector, per
    setting, ...) together, every other item alone."""
    run: dict[str, Any] = {}
    for key, value in data.items():
        if run and not (_record(value) and tuple(value) == tuple(next(iter(run.values())))):
            yield run
            run = {}
        run[key] = value
        if not _record(value):
            yield run
            run = {}
    if run:
        yield run


def _section(data: dict[str, Any], level: int) -> list[str]:
    data = {k: v for k, v in data.items() if v not in (None, "", [], {})}
    plain = {k: v for k, v in data.items() if _scalar(v) or _scalars(v)}
    lines = [f"- {k}: {fmt(v)}" for k, v in plain.items()] + ([""] if plain else [])
    for run in _runs({k: v for k, v in data.items() if k not in plain}):
        if len(run) > 1:  # alike records under their names: one table
            table, rest = _table(run, "")
            lines += [*table, *_section(rest, level)]
            continue
        ((key, value),) = run.items()
        heading = f"{'#' * min(level, 6)} {key}"
        if isinstance(value, list) and all(_record(v) for v in value):
            table, rest = _table({str(i + 1): v for i, v in enumerate(value)}, "#")
        elif isinstance(value, dict) and all(_record(v) for v in value.values()):
            table, rest = _table(value, "")
        elif isinstance(value, dict):
            lines += [heading, "", *_section(value, level + 1)]
            continue
        else:  # a list of lists or of mixed items: as it is
            lines += [heading, "", f"`{json.dumps(value)}`", ""]
            continue
        lines += [heading, "", *table, *_section(rest, level + 1)]
    return lines


def _reports(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths or sorted(REPORTS.rglob("*.json")):
        if META in json.loads(path.read_text()):
            yield path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="*", type=Path, help="reports to re-render (default: all under reports/)")
    args = ap.parse_args(argv)
    for path in _reports(args.json):
        path.with_suffix(".md").write_text(render(json.loads(path.read_text())))
        print(path.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
