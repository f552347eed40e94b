"""The README and docs/ stay true to the tree: every setting is documented (docs/configuration.md is made
from the Settings classes and current), every report and file they cite exists."""

from __future__ import annotations

import re

import pytest
from pydantic_settings import BaseSettings

from services import configuration
from services.common.limits import HttpSettings
from services.common.paths import REPO
from services.emotion.settings import EmotionSettings
from services.gateway.settings import GatewaySettings
from services.recommender.settings import RecommenderSettings
from training.settings import TrainingSettings

README = (REPO / "README.md").read_text()
DOCS = {
    p.relative_to(REPO).as_posix(): p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")]
}


SETTINGS: list[type[BaseSettings]] = [
    HttpSettings,
    EmotionSettings,
    GatewaySettings,
    RecommenderSettings,
    TrainingSettings,
]


def test_the_configuration_doc_is_current() -> None:
    assert (REPO / "docs" / "configuration.md").read_text() == configuration.render(), (
        "docs/configuration.md is not current: run python -m services.configuration"
    )


@pytest.mark.parametrize("cls", SETTINGS)
def test_the_configuration_doc_names_every_variable(cls: type[BaseSettings]) -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    names = configuration.variables(cls)
    assert names and all(f"`{name}`" in doc for name in names)


def test_every_variable_in_the_configuration_doc_says_what_it_means() -> None:
    rows = [
        line
        for line in (REPO / "docs" / "configuration.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    unexplained = [row.split("|")[1].strip() for row in rows if not row.split("|")[3].strip()]
    assert rows and not unexplained, f"give these settings a comment beside their field: {unexplained}"


def test_the_readme_lists_at_most_twelve_everyday_variables_each_documented() -> None:
    section = README.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"`([A-Z][A-Z0-9_<>]+)`", section)
    assert 0 < len(listed) <= 12, listed
    documented = {n for cls in SETTINGS for n in configuration.variables(cls)}
    documented |= {name for name, _, _ in configuration.PLAIN}
    services = ("EMOTION", "RECOMMENDER", "GATEWAY")
    missing = [
        n
        for n in listed
        if n not in documented and not {n.replace("<NAME>", s) for s in services} <= documented
    ]
    assert not missing, f"the README lists {missing}, which docs/configuration.md does not"


def test_every_path_the_docs_cite_exists() -> None:
    cited = re.compile(r"`((?:reports|services|training|tests|bench|docs|frontend)/[\w./-]*)`")
    links = re.compile(r"\]\(((?!https?:|#)[^)\s#]+)[^)\s]*\)")
    missing = []
    for doc, text in DOCS.items():
        base = (REPO / doc).parent
        for path in cited.findall(text):
            if "NAME" not in path and "<" not in path and not (REPO / path).exists():
                missing.append(f"{doc}: {path}")
        for link in links.findall(text):
            if not (base / link).exists():
                missing.append(f"{doc}: link {link}")
    assert not missing, missing


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_anchor_the_docs_link_exists() -> None:
    links = re.compile(r"\]\(((?!https?:)[^)\s#]*)#([^)\s]+)\)")
    missing = []
    for doc, text in DOCS.items():
        for target, anchor in links.findall(text):
            path = (REPO / doc).parent / target if target else REPO / doc
            headings = re.findall(r"^#+ (.+)$", path.read_text(), re.M) if path.is_file() else []
            if anchor not in {_slug(h) for h in headings}:
                missing.append(f"{doc}: {target}#{anchor}")
    assert not missing, missing


# A figure: digits not glued to a word ("FER2013", "640x480" are names, not figures).
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\w)")


def _held(figure: str, numbers: set[str]) -> bool:
    """The figure is one of the numbers, or one of them rounded as the figure is (bytes quoted in MB too)."""
    if figure in numbers:
        return True
    places = len(figure.partition(".")[2])
    return any(round(float(n) / scale, places) == float(figure) for n in numbers for scale in (1, 1e3, 1e6))


def test_the_readme_quotes_its_figures_from_the_reports_it_cites() -> None:
    """Each point of the README's results names its report (or model card); every figure in it is there."""
    section = README.split("## Results\n", 1)[1].split("\n## ", 1)[0]
    points = re.split(r"\n- ", section)[1:]
    assert len(points) >= 3
    wrong = []
    for point in points:
        cited = re.findall(r"`((?:reports|services/emotion/model)/[\w./-]+)`", point)
        assert cited, f"no report cited: {point}"
        quoted = NUMBER.findall(re.sub(r"`[^`]*`", "", point).replace(",", ""))
        numbers = set(NUMBER.findall(" ".join((REPO / path).read_text() for path in cited).replace(",", "")))
        wrong += [f"{n} (in: {point[:60]}...)" for n in quoted if not _held(n, numbers)]
    assert not wrong, f"figures the cited reports do not hold: {wrong}"


# The docs moved out of the README: what a figure there quotes, the report it cites holds.
MOVED = ["docs/deployment.md", "docs/training.md", "docs/api.md", "docs/spotify.md"]
MEASURED = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?) ?(?:ms|s|MB|MiB|KB|%)(?!\w)")


@pytest.mark.parametrize("doc", MOVED)
def test_a_sentence_that_cites_a_report_quotes_only_its_figures(doc: str) -> None:
    text = re.sub(r"```.*?```", "", DOCS[doc], flags=re.S).replace("\n", " ")
    wrong = []
    for sentence in re.split(r"(?<=[.)])\s+(?=[A-Z(])", text):
        cited = [REPO / p for p in re.findall(r"`(reports/[\w./-]+)`", sentence)]
        if not (cited := [p for p in cited if p.is_file()]):
            continue
        numbers = set(NUMBER.findall(" ".join(path.read_text() for path in cited).replace(",", "")))
        wrong += [f"{n} ({sentence[:70]}...)" for n in MEASURED.findall(sentence) if not _held(n, numbers)]
    assert not wrong, f"{doc} quotes figures its cited reports do not hold: {wrong}"
