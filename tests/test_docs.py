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
    links = re.compile(r"\]\(((?!https?:|#)[^)\s]+)\)")
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
