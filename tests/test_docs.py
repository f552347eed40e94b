"""The README and docs/ stay true to the tree: every setting is documented, every report and file they
cite exists."""

from __future__ import annotations

import re

import pytest
from pydantic_settings import BaseSettings

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


def env_names(cls: type[BaseSettings]) -> list[str]:
    """The environment variables a settings class reads; a field that is itself settings (the
    recommender's first-run download) reads its own class's."""
    prefix = cls.model_config.get("env_prefix", "")
    names = []
    for name, field in cls.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            names += env_names(field.annotation)
            continue
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.append(str(choices[0]) if choices else f"{prefix}{name}".upper())
    return names


@pytest.mark.parametrize(
    "cls", [HttpSettings, EmotionSettings, GatewaySettings, RecommenderSettings, TrainingSettings]
)
def test_the_readme_documents_every_setting(cls: type[BaseSettings]) -> None:
    missing = [n for n in env_names(cls) if f"`{n}`" not in README]
    assert not missing, f"README.md's configuration tables lack {missing}"


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
