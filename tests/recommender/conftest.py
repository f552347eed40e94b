from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.recommender.app import app
from tests.recommender import synthetic


@pytest.fixture(scope="session")
def synthetic_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return synthetic.write(tmp_path_factory.mktemp("music"))


@pytest.fixture(scope="module")
def client(synthetic_paths: tuple[Path, Path]) -> Iterator[TestClient]:
    catalog, labelled = synthetic_paths
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECOMMENDER_CATALOG_PATH", str(catalog))
        mp.setenv("RECOMMENDER_LABELLED_PATH", str(labelled))
        with TestClient(app) as c:
            yield c
