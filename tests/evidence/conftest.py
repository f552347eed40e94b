"""One running system (real processes, real Redis on its own database) shared by the evidence tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.stack import Stack, redis_db, running_stack

REDIS_DB = 8  # the evidence tests' own database: flushed before and after, nothing else touched


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with redis_db(REDIS_DB) as (url, _), running_stack(tmp_path_factory.mktemp("music"), url) as running:
        yield running
