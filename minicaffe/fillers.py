"""Weight fillers (Caffe's filler.hpp): initial values for learnable blobs.

Each filler reads a `FillerParameter` (caffe.proto field names: type, value, min, max, mean,
std, sparse, variance_norm) and overwrites a blob's data. Randomness comes from NumPy's global
generator (`np.random.seed` is what the solver's `random_seed` sets), so a seeded run is
repeatable. Values are drawn on the host and copied to the blob's device.

Fan sizes follow Caffe: on a blob of shape (s0, s1, ...), fan_in = count / s0 and
fan_out = count / s1 (count for a 1-D blob).
"""
import math

import numpy as np

from minicaffe import backend
from minicaffe.errors import FillerError, LayerSetupError
from minicaffe.registry import Registry

FILLERS = Registry("filler type")


def register_filler(type_name):
    """Function decorator: `fn(filler_param, shape, out)` writes the values into `out` (a
    host array of that shape, the blob's dtype), drawing a chunk at a time (`_draw`)."""
    return FILLERS.register(type_name)


# FillerParameter's real-valued fields: every one must be finite, whichever filler reads it
# (`std: nan` would otherwise fill the weights with NaN without a word).
_REAL_FIELDS = ("value", "min", "max", "mean", "std")


def fill(blob, filler_param):
    """Overwrite `blob.data` with values drawn by `filler_param.type`.

    Raises FillerError (a LayerSetupError; a Net adds the layer and field) for an unknown type,
    a non-finite parameter, a negative gaussian std or a blob shape the filler cannot fill.
    """
    ftype = getattr(filler_param, "type", "constant") or "constant"
    if ftype not in FILLERS:
        raise FillerError(FILLERS.unknown_message(ftype), filler_param)
    for field in _REAL_FIELDS:
        value = float(getattr(filler_param, field, 0.0))
        if not math.isfinite(value):
            raise FillerError(f"{ftype} filler: {field} = {value}; expected a finite number",
                              filler_param)
    if ftype == "gaussian" and filler_param.std < 0:
        raise FillerError(f"gaussian filler: std = {filler_param.std}; expected >= 0",
                          filler_param)
    if blob.count == 0:
        return
    on_host = isinstance(blob.data, np.ndarray) and blob.data.flags.c_contiguous
    out = blob.data if on_host else np.empty(blob.shape, dtype=blob.dtype)
    try:
        FILLERS.get(ftype)(filler_param, tuple(blob.shape), out)
    except LayerSetupError as exc:
        raise FillerError(str(exc), filler_param) from None
    if not on_host:
        blob.data[...] = backend.xp_of(blob.data).asarray(out)


# Values are drawn in float64 a chunk at a time and stored in the blob's dtype: a whole-blob
# float64 draw needed 3x the blob's memory (a 6.5 GB weight blob from a mistyped dimension
# took 23 GB, and the OOM killer). NumPy's legacy generator draws the same stream either way.
_CHUNK = 1 << 20


def _draw(out, sample):
    """Fill `out` (C-contiguous) with `sample(n)` (float64, n values) a chunk at a time."""
    flat = out.reshape(-1)
    for start in range(0, flat.size, _CHUNK):
        stop = min(flat.size, start + _CHUNK)
        flat[start:stop] = sample(stop - start)


def fan_in_out(shape):
    """(fan_in, fan_out) of a blob shape as Caffe counts them."""
    count = int(np.prod(shape)) if shape else 1
    fan_in = count // shape[0] if shape and shape[0] else count
    fan_out = count // shape[1] if len(shape) > 1 and shape[1] else count
    return fan_in, fan_out


def _variance_n(filler_param, shape):
    fan_in, fan_out = fan_in_out(shape)
    norm = getattr(filler_param, "variance_norm", "FAN_IN")
    if norm == "FAN_IN":
        return fan_in
    if norm == "FAN_OUT":
        return fan_out
    if norm == "AVERAGE":
        return (fan_in + fan_out) / 2.0
    raise LayerSetupError(f"{filler_param.type} filler: variance_norm must be FAN_IN, FAN_OUT or "
                          f"AVERAGE, got {norm!r}")


@register_filler("constant")
def _constant(p, shape, out):
    """Every value = `value` (default 0)."""
    out[...] = float(p.value)


@register_filler("uniform")
def _uniform(p, shape, out):
    """U[min, max] (defaults 0, 1)."""
    if p.max < p.min:
        raise LayerSetupError(f"uniform filler: max ({p.max}) < min ({p.min})")
    _draw(out, lambda n: np.random.uniform(p.min, p.max, size=n))


@register_filler("gaussian")
def _gaussian(p, shape, out):
    """N(mean, std). With `sparse: s` (>= 0) each value is kept with probability
    s / shape[0] (s expected non-zero inputs per output) and set to 0 otherwise."""
    if p.sparse >= 0:
        if len(shape) < 1 or shape[0] == 0:
            raise LayerSetupError(f"gaussian filler: sparse needs a blob with a first axis, got {shape}")
        keep = p.sparse / shape[0]
        if keep > 1:
            raise LayerSetupError(f"gaussian filler: sparse={p.sparse} exceeds the {shape[0]} outputs "
                                  f"of blob shape {shape}")
    _draw(out, lambda n: np.random.normal(p.mean, p.std, size=n))
    if p.sparse >= 0:
        flat = out.reshape(-1)
        for start in range(0, flat.size, _CHUNK):
            stop = min(flat.size, start + _CHUNK)
            flat[start:stop] *= np.random.binomial(1, keep, size=stop - start)


@register_filler("positive_unitball")
def _positive_unitball(p, shape, out):
    """U[0, 1], then each of the shape[0] slices scaled to sum to 1."""
    if not shape:
        np.random.uniform(0.0, 1.0, size=shape)      # one draw, as a whole-array call makes
        out[...] = 1.0
        return
    rows = out.reshape(shape[0], -1)
    per = max(1, _CHUNK // max(1, rows.shape[1]))
    for start in range(0, rows.shape[0], per):
        stop = min(rows.shape[0], start + per)
        block = np.random.uniform(0.0, 1.0, size=(stop - start, rows.shape[1]))
        block /= block.sum(axis=1, keepdims=True)
        rows[start:stop] = block


@register_filler("xavier")
def _xavier(p, shape, out):
    """U[-sqrt(3/n), sqrt(3/n)], n from variance_norm (fan_in by default)."""
    scale = math.sqrt(3.0 / _variance_n(p, shape))
    _draw(out, lambda n: np.random.uniform(-scale, scale, size=n))


@register_filler("msra")
def _msra(p, shape, out):
    """N(0, sqrt(2/n)), n from variance_norm (fan_in by default)."""
    std = math.sqrt(2.0 / _variance_n(p, shape))
    _draw(out, lambda n: np.random.normal(0.0, std, size=n))


@register_filler("bilinear")
def _bilinear(p, shape, out):
    """Bilinear-upsampling kernel for a (N, C, K, K) deconvolution weight:
    w[y][x] = (1 - |x/f - c|) (1 - |y/f - c|), f = ceil(K/2), c = (K-1)/(2f)."""
    if len(shape) != 4 or shape[2] != shape[3]:
        raise LayerSetupError(f"bilinear filler: needs a 4-D blob with square kernels, got shape {shape}")
    k = shape[3]
    f = math.ceil(k / 2.0)
    c = (k - 1) / (2.0 * f)
    t = 1.0 - np.abs(np.arange(k) / f - c)
    out[...] = np.outer(t, t)
