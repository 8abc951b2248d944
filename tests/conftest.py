"""Shared fixtures: seeded RNGs, optional-dependency skips, float64 helpers."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    """A seeded NumPy Generator, fresh per test."""
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed_global_rng():
    np.random.seed(1234)
    yield


@pytest.fixture
def torch():
    """The torch module, or skip the test with the reason (torch is an optional test extra)."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")
    torch.manual_seed(0)
    return torch
