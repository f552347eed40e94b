"""docs/configuration.md, made from the Settings classes: every environment variable, its default and what
it means (the comment beside the field, where the reason for its default is written).

    python -m services.configuration          # writes docs/configuration.md
    python -m services.configuration --check  # exit 1 when it is not current (tests/test_docs.py too)
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import sys
import textwrap
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from services.common.paths import REPO

DOC = REPO / "docs" / "configuration.md"

# (heading, "module:Class"), in the order a reader meets them. Imported by name: training's settings are
# documented here too, though no service imports training.
SECTIONS = [
    ("Every service: HTTP limits", "services.common.limits:HttpSettings"),
    ("Emotion service", "services.emotion.settings:EmotionSettings"),
    ("Recommender", "services.recommender.settings:RecommenderSettings"),
    ("Gateway", "services.gateway.settings:GatewaySettings"),
    ("Training", "training.settings:TrainingSettings"),
]

# Read straight from the environment, not by a Settings class.
PLAIN = [
    (
        "MOODTUNES_DATA",
        "`../shared/data`",
        "the datasets (`services/common/paths.py`), for every service and training",
    ),
    ("MOODTUNES_HOST", "127.0.0.1", "the address `python -m services` binds every service to"),
    (
        "MOODTUNES_<NAME>_PORT",
        "gateway 8000, emotion 8001, recommender 8002",
        "where `python -m services` serves each (`services/launch.py`: `SERVICES`)",
    ),
    (
        "MOODTUNES_<NAME>_METRICS_PORT",
        "gateway 9000, emotion 9001, recommender 9002",
        "where `python -m services` serves each one's Prometheus metrics (`METRICS_PORTS`)",
    ),
    (
        "MOODTUNES_START_TIMEOUT_S",
        "300",
        "how long `python -m services` waits for every service to be healthy",
    ),
    ("ORT_DISABLE_TELEMETRY", "1 (set by `make run` and the images)", "ONNX Runtime's telemetry stays off"),
    ("SPOTIPY_CLIENT_ID, SPOTIPY_CLIENT_SECRET", "none", "only for `python -m training.music.scraper`"),
]


def _load(path: str) -> type[BaseSettings]:
    module, _, name = path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and issubclass(cls, BaseSettings)
    return cls


def _comments(cls: type) -> dict[str, str]:
    """Each field's comment: the comment lines right above it in its class, and one at the end of its
    line."""
    lines, _ = inspect.getsourcelines(cls)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    found = {}
    for node in tree.body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        i = node.lineno - 2
        while i >= 0 and lines[i].strip().startswith("#"):
            above.insert(0, lines[i].strip().lstrip("#").strip())
            i -= 1
        _, hash_, inline = lines[node.end_lineno - 1].partition("  # ")  # type: ignore[operator]
        found[node.target.id] = " ".join([*above, inline.strip() if hash_ else ""]).strip()
    return found


def _description(cls: type[BaseSettings], name: str, field: FieldInfo) -> str:
    if field.description:
        return field.description
    for owner in cls.__mro__:  # inherited fields (the log settings) are commented where they are defined
        if name in owner.__dict__.get("__annotations__", {}):
            return _comments(owner).get(name, "")
    return ""


def _default(name: str, field: FieldInfo) -> str:
    if field.default_factory in (list, dict):
        return "empty"
    if field.default_factory is not None:
        return "computed: see meaning"
    value: Any = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, Path):
        return f"`{value.relative_to(REPO)}`" if value.is_relative_to(REPO) else f"`{value}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return str(value).lower()
    if name.endswith("_bytes") and isinstance(value, int) and value % 1024 == 0:
        return (
            f"{value} ({value // 1024**2} MiB)" if value % 1024**2 == 0 else f"{value} ({value // 1024} KiB)"
        )
    return f"`{value}`" if isinstance(value, str) else str(value)


def env_name(cls: type[BaseSettings], name: str, field: FieldInfo) -> str:
    choices = getattr(field.validation_alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def _nested(field: FieldInfo) -> type[BaseSettings] | None:
    kind = field.annotation
    return kind if isinstance(kind, type) and issubclass(kind, BaseSettings) else None


def variables(cls: type[BaseSettings]) -> list[str]:
    """Every environment variable `cls` reads, its groups' too."""
    names = []
    for name, field in cls.model_fields.items():
        group = _nested(field)
        names += variables(group) if group else [env_name(cls, name, field)]
    return names


def _table(cls: type[BaseSettings], heading: str, level: int) -> list[str]:
    out = [f"{'#' * level} {heading} (`{cls.__module__}.{cls.__name__}`)", ""]
    if cls.__doc__ and cls.__doc__ is not BaseSettings.__doc__:
        out += [" ".join(cls.__doc__.split()), ""]
    rows, groups = [], []
    for name, field in cls.model_fields.items():
        group = _nested(field)
        if group is not None:
            groups.append((name, group))
            continue
        meaning = _description(cls, name, field).replace("|", "\\|")
        rows.append(f"| `{env_name(cls, name, field)}` | {_default(name, field)} | {meaning} |")
    if rows:
        out += ["| variable | default | meaning |", "|---|---|---|", *rows, ""]
    for name, group in groups:
        out += _table(group, f"{heading}: {name.replace('_', ' ')}", level + 1)
    return out


def render() -> str:
    out = [
        "# Configuration",
        "",
        "<!-- Generated by `python -m services.configuration` from the Settings classes: edit those, not",
        "this file (tests/test_docs.py checks that it is current). -->",
        "",
        "Every setting has a default, and an environment variable that overrides it; the defaults are what",
        "`make run` and `docker compose up` use. The README lists the everyday ones.",
        "",
        "## Where things run",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
        *(f"| `{name}` | {default} | {meaning} |" for name, default, meaning in PLAIN),
        "",
    ]
    for heading, path in SECTIONS:
        out += _table(_load(path), heading, 2)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when docs/configuration.md is not current"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOC.exists() and DOC.read_text() == text
        if not current:
            print(
                f"{DOC.relative_to(REPO)} is not current: run python -m services.configuration",
                file=sys.stderr,
            )
        return 0 if current else 1
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
