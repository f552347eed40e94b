"""The services speak JSON through one library, orjson (services/common/limits.py, the gateway's and the
recommender's answers, logs): the standard library's json module would be a second way to do it."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"


def test_no_service_module_imports_the_standard_json_module() -> None:
    offenders = []
    for path in sorted(SERVICES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if "json" in names or module == "json":
                offenders.append(str(path.relative_to(SERVICES)))
    assert offenders == []
