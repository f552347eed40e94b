"""The page's files as the browser gets them: ES modules from this origin only, nothing inline (the
page can then run under a Content-Security-Policy without 'unsafe-inline'), every import resolvable."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from services.common.paths import REPO

FRONTEND = REPO / "frontend"
IMPORT = re.compile(r"""^\s*import\s+(?:[^'"]+\s+from\s+)?["']([^"']+)["'];?\s*$""", re.M)
# A module loaded only when needed: `import("./x.js")` with the name written out.
DYNAMIC = re.compile(r"""\bimport\(\s*["']([^"']+)["']\s*\)""")


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []  # what would need 'unsafe-inline'
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            self.scripts.append(named)
            self._in_script = True
        if tag == "style":
            self.inline.append("<style>")
        self.inline += [f"{tag} {name}" for name, _ in attrs if name == "style" or name.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("<script> body")


PAGES = {"index.html": "main.js", "why.html": "why.js"}


def parsed(name: str) -> Page:
    page = Page()
    page.feed((FRONTEND / name).read_text())
    return page


def test_each_page_loads_one_module_and_nothing_inline() -> None:
    assert {p.name for p in FRONTEND.glob("*.html")} == set(PAGES)
    for name, entry in PAGES.items():
        page = parsed(name)
        assert page.scripts == [{"type": "module", "src": entry}], name
        assert page.inline == [], name


def modules() -> dict[str, list[str]]:
    """Every module reachable from the pages' entry modules, with what each imports."""
    found: dict[str, list[str]] = {}
    todo = list(PAGES.values())
    while todo:
        name = todo.pop()
        if name in found:
            continue
        text = (FRONTEND / name).read_text()
        found[name] = IMPORT.findall(text) + DYNAMIC.findall(text)
        todo += [spec.removeprefix("./") for spec in found[name]]
    return found


def test_modules_import_only_sibling_files_that_exist() -> None:
    graph = modules()
    assert {
        "main.js",
        "api.js",
        "camera.js",
        "state.js",
        "tracks.js",
        "render.js",
        "mode.js",
        "mood.js",
    } <= set(graph)
    assert "./ondevice.js" in graph["mode.js"]  # on-device mode's engine, loaded only when that mode is tried
    for name, imports in graph.items():
        for spec in imports:
            assert spec.startswith("./") and spec.endswith(".js"), f"{name} imports {spec}"
            assert (FRONTEND / spec).is_file(), f"{name} imports {spec}, which does not exist"
    # Every .js file is part of a page (no dead module left behind); ondevice.js, the on-device engine,
    # is also loaded on its own by its browser tests (tests/e2e/test_ondevice_engine.py).
    assert {p.name for p in FRONTEND.glob("*.js")} == set(graph) | {"ondevice.js"}


def test_no_markup_is_built_from_strings() -> None:
    """innerHTML would bring inline style attributes (refused under the policy) and invites injection:
    the modules build elements."""
    for path in FRONTEND.glob("*.js"):
        assert "innerHTML" not in path.read_text(), path.name
