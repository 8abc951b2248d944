"""Caffe's DataTransformer, vectorised over a batch.

For each record with crop offset `(h0, w0)` and crop size `(ch, cw)`:

    y[c, i, j] = (x[c, h0 + i, w0 + j'] - mean[c, h0 + i, w0 + j']) * scale
    j' = cw - 1 - j when the record is mirrored, else j

`mean` is the mean_file image (same size as the record, indexed at the crop offset) or the
per-channel `mean_value` (one value applies to every channel). The crop offset is random at
TRAIN (uniform over the valid offsets) and centred at TEST (`(H - ch) // 2`); a record is
mirrored when `mirror` is set and a coin flip says so, in either phase.
"""
import numpy as np

from minicaffe import wire
from minicaffe.data.shard import draw_rows
from minicaffe.errors import DataError


def read_mean_file(path):
    """Mean image `(C, H, W)` float32 of a Caffe .binaryproto (BlobProto).

    Raises DataError naming the file when it cannot be read, is not a BlobProto (the byte
    offset), or holds no (1, C, H, W) image of finite values.
    """
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read mean file ({e.strerror})") from None
    data, _ = wire.decode_blob_proto(buf, what=str(path))
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3 or data.size == 0:
        raise DataError(f"{path}: mean file holds a blob of shape {data.shape}, expected "
                        f"(1, C, H, W) with C, H, W >= 1")
    bad = ~np.isfinite(data)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{path}: mean image holds {int(bad.sum())} non-finite values (the first "
                        f"at {first})")
    return data.astype(np.float32)


def write_mean_file(path, mean):
    """Write a mean image `(C, H, W)` as a BlobProto with legacy num/channels/height/width, as
    Caffe's compute_image_mean does."""
    mean = np.asarray(mean, dtype=np.float32)
    with open(path, "wb") as f:
        f.write(wire.encode_blob_proto(mean[None], legacy_4d=True))


class DataTransformer:
    """Applies a `TransformationParameter` to batches `(N, C, H, W)` → float32.

    Args: `param` (scale, mirror, crop_size, mean_file, mean_value), `phase` ("TRAIN"/"TEST"),
    `seed` for the crop/mirror draws, `where` naming the layer in errors, `shard` (a
    BatchShard: draws are made for the global batch, this replica's slice kept).
    Raises DataError when both mean_file and mean_value are given, the mean does not fit the
    data, or the crop is larger than the image.
    """

    def __init__(self, param, phase="TRAIN", seed=None, where="transform_param", shard=None):
        self.scale = float(getattr(param, "scale", 1.0))
        self.mirror = bool(getattr(param, "mirror", False))
        self.crop_size = int(getattr(param, "crop_size", 0))
        mean_file = getattr(param, "mean_file", "") or ""
        mean_value = list(getattr(param, "mean_value", []) or [])
        self.where = where
        self.train = str(phase).upper() in ("TRAIN", "0")
        self.rng = np.random.default_rng(seed)
        self.shard = shard
        if mean_file and mean_value:
            raise DataError(f"{where}: give mean_file or mean_value, not both")
        self.mean_image = read_mean_file(mean_file) if mean_file else None
        self.mean_values = np.asarray(mean_value, dtype=np.float32) if mean_value else None

    def output_shape(self, shape):
        """`(C, H, W)` of a record of `shape` after the crop."""
        c, h, w = shape
        if self.crop_size:
            if self.crop_size > h or self.crop_size > w:
                raise DataError(f"{self.where}: crop_size {self.crop_size} exceeds the image size "
                                f"{h}x{w}")
            return c, self.crop_size, self.crop_size
        return c, h, w

    def _channel_means(self, c):
        m = self.mean_values
        if m.size == 1:
            return np.full(c, m[0], dtype=np.float32)
        if m.size != c:
            raise DataError(f"{self.where}: {m.size} mean_value entries for {c} channels "
                            f"(give 1 or {c})")
        return m

    def __call__(self, x, out=None):
        """Transform `x (N, C, H, W)` → float32 `(N, C, ch, cw)` (written into `out` if given)."""
        n, c, h, w = x.shape
        _, ch, cw = self.output_shape((c, h, w))
        if self.mean_image is not None and self.mean_image.shape != (c, h, w):
            raise DataError(f"{self.where}: mean_file image has shape {self.mean_image.shape}, the "
                            f"data records {(c, h, w)}")
        if self.crop_size:
            if self.train:
                h0 = draw_rows(self.rng.integers, n, self.shard, 0, h - ch + 1)
                w0 = draw_rows(self.rng.integers, n, self.shard, 0, w - cw + 1)
            else:
                h0 = np.full(n, (h - ch) // 2)
                w0 = np.full(n, (w - cw) // 2)
        else:
            h0 = w0 = np.zeros(n, dtype=np.int64)
        flip = (draw_rows(self.rng.random, n, self.shard) < 0.5 if self.mirror
                else np.zeros(n, dtype=bool))

        if not self.crop_size and not flip.any():
            y = x.astype(np.float32, copy=True) if out is None else _assign(out, x)
            if self.mean_image is not None:
                y -= self.mean_image
        else:
            rows = h0[:, None] + np.arange(ch)                               # (N, ch)
            j = np.arange(cw)
            cols = w0[:, None] + np.where(flip[:, None], cw - 1 - j, j)      # (N, cw)
            ni = np.arange(n)[:, None, None, None]
            ci = np.arange(c)[None, :, None, None]
            ri, wi = rows[:, None, :, None], cols[:, None, None, :]
            y = x[ni, ci, ri, wi].astype(np.float32)
            if self.mean_image is not None:
                y -= self.mean_image[ci, ri, wi]
            if out is not None:
                out[...] = y
                y = out
        if self.mean_values is not None:
            y -= self._channel_means(c)[None, :, None, None]
        if self.scale != 1.0:
            y *= np.float32(self.scale)
        return y


def _assign(out, x):
    out[...] = x
    return out
