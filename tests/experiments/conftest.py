"""Tiny generated data sets for the experiments' smoke tests (no download, a few seconds)."""
import numpy as np
import pytest

from minicaffe.experiments import datasets
from tests.experiments.tinydata import tiny_images


@pytest.fixture
def tiny_data(tmp_path):
    """A data root with fashion-mnist/ (256 training, 200 test images); returns its path."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    folder = root / "fashion-mnist"
    for split, n in (("train", 256), ("t10k", 200)):
        x, y = tiny_images(n, rng)
        datasets.write_idx(str(folder), split, x, y)
    return str(root)
