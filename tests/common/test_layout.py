"""Every service is laid out the same way: one JSON library (orjson; the standard library's json module
would be a second way to do it), and each service's own metrics in its metrics.py (the shared ones in
services/common)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
METRICS = {"Counter", "Gauge", "Histogram", "Summary"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(SERVICES)), ast.parse(p.read_text())) for p in sorted(SERVICES.rglob("*.py"))]


def test_no_service_module_imports_the_standard_json_module() -> None:
    offenders = []
    for name, tree in _modules():
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if "json" in names or module == "json":
                offenders.append(name)
    assert offenders == []


def test_a_services_metrics_are_made_in_its_metrics_module() -> None:
    made = {
        name
        for name, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in METRICS
    }
    shared = {"common/observability.py", "common/limits.py"}
    assert made - shared == {"emotion/metrics.py", "gateway/metrics.py", "recommender/metrics.py"}
