"""Tiny generated images for the experiments' tests."""
import numpy as np


def tiny_images(n, rng, size=28):
    """n uint8 images whose class (0..9) is a bright bar at a class-dependent place: easy
    enough that a few dozen iterations learn something."""
    labels = rng.integers(0, 10, n)
    x = rng.integers(0, 40, (n, size, size)).astype(np.uint8)
    for i, c in enumerate(labels):
        r = 4 + 2 * c
        x[i, r:r + 2, 4:size - 4] = 230
    return x, labels
