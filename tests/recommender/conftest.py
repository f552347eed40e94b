from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from samples import music as synthetic
from services.recommender.app import create_app
from services.recommender.settings import RecommenderSettings


@pytest.fixture(scope="session")
def synthetic_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return synthetic.write(tmp_path_factory.mktemp("music"))


@pytest.fixture(scope="module")
def client(synthetic_paths: tuple[Path, Path]) -> Iterator[TestClient]:
    catalog, labelled = synthetic_paths
    with TestClient(create_app(RecommenderSettings(catalog_path=catalog, labelled_path=labelled))) as c:
        yield c
