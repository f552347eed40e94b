from __future__ import annotations

from pathlib import Path

import pytest

from samples import fer


@pytest.fixture(scope="session")
def synthetic_fer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fer.write_npz(tmp_path_factory.mktemp("fer") / "fer2013.npz")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Training tests share a 2-core machine with the services under test: one thread avoids
    oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
