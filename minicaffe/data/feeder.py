"""What the data layers share: a batch producer run through the Prefetcher, the effective
transform parameters (including Caffe's deprecated copies inside data_param/image_data_param),
and the seed drawn for a layer.
"""
import weakref
from types import SimpleNamespace

import numpy as np

from minicaffe.data.prefetch import Prefetcher
from minicaffe.errors import DataError

_LEGACY_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def transform_param_of(layer_param, legacy=None):
    """`layer_param.transform_param`, or, when it is not set, the deprecated transform fields
    of `legacy` (data_param / image_data_param), as Caffe's upgrade moves them."""
    if layer_param.has("transform_param") or legacy is None:
        return layer_param.transform_param
    if not any(hasattr(legacy, f) and legacy.has(f) for f in _LEGACY_TRANSFORM_FIELDS):
        return layer_param.transform_param
    return SimpleNamespace(scale=legacy.scale, mean_file=legacy.mean_file,
                           crop_size=legacy.crop_size, mirror=legacy.mirror, mean_value=[],
                           force_color=getattr(legacy, "force_encoded_color", False),
                           force_gray=False)


def layer_seed():
    """A seed for a data layer's shuffling and crop/mirror draws, taken from NumPy's global
    RNG so `np.random.seed(...)` (and the solver's random_seed) make runs repeatable."""
    return int(np.random.randint(0, 2**31 - 1))


class Feeder:
    """Calls `produce()` for each batch: directly when `depth == 0`, otherwise through a
    background Prefetcher of that depth. `produce` must not hold a reference to the layer, so
    the layer can be garbage-collected (which then stops the thread)."""

    def __init__(self, produce, depth, name):
        self._produce = produce
        self._prefetcher = Prefetcher(produce, depth=depth, name=f"prefetch:{name}") if depth else None
        if self._prefetcher is not None:
            self._finalizer = weakref.finalize(self, self._prefetcher.close)

    def next(self):
        if self._prefetcher is None:
            return self._produce()
        return self._prefetcher.get()

    def close(self):
        if self._prefetcher is not None:
            self._prefetcher.close()


class named_errors:
    """Context manager: re-raise a DataError with the layer's name and type in front."""

    def __init__(self, layer):
        self.layer = layer

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, DataError):
            raise self.layer.error(str(exc), cls=DataError) from None
        return False
