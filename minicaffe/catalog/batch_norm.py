"""BatchNorm layer (Caffe's BatchNormLayer): normalisation only; the affine part is a Scale."""
from minicaffe import backend
from minicaffe.blob import Blob
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.data.shard import shard_for
from minicaffe.phase import phase_name
from minicaffe.prototxt import ParamSpec


@register_layer("BatchNorm")
class BatchNorm(Layer):
    """y = (x - mean) / sqrt(var + eps) per channel, statistics over N and the spatial axes.

    bottom[0]: (N, C, ...); top[0]: same. Safe in place (x_norm is kept for backward).
    blobs (state, never learned; Caffe's order and meaning): [0] running mean sum (C,),
    [1] running variance sum (C,), [2] scale factor s (1,). Their `param` specs get lr_mult 0.
    TRAIN (use_global_stats false, the default at TRAIN): batch mean and biased batch variance,
    then s = maf*s + 1, mean_sum = mean + maf*mean_sum, var_sum = m/(m-1)*var + maf*var_sum
    (m = N*H*W, maf = moving_average_fraction).
    Global stats (default at TEST): mean = mean_sum/s, var = var_sum/s (0 when s == 0).
    Backward, batch stats: dx = (dy - mean(dy) - y*mean(dy*y)) / sqrt(var + eps);
    global stats: dx = dy / sqrt(var + eps).
    Data parallel (TRAIN, a BatchShard with sync_batch_norm, minicaffe/data/shard.py): the
    batch mean, variance and the two backward means are those of the global batch (sums
    allreduced over the replicas, m = P*N*H*W), so every replica normalises exactly as the one
    process with the global batch does and the running statistics agree on every replica.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.batch_norm_param
        if bottom[0].ndim < 2:
            raise self.error("expects a bottom with a channel axis (N, C, ...)", bottom)
        self.use_global_stats = (bool(p.use_global_stats) if p.has("use_global_stats")
                                 else phase_name(self.phase) == "TEST")
        self.maf, self.eps = float(p.moving_average_fraction), float(p.eps)
        C = bottom[0].shape[1]
        self.channels = C
        dtype = bottom[0].dtype
        self.blobs = [Blob((C,), dtype=dtype, name="mean"), Blob((C,), dtype=dtype, name="variance"),
                      Blob((1,), dtype=dtype, name="scale_factor")]
        for b in self.blobs:
            b.data[...] = 0
        self._freeze_statistics(bottom)
        self._key = None
        shard = shard_for(self.phase)
        self._sync = shard if shard is not None and shard.syncs_batch_norm else None

    def _freeze_statistics(self, bottom):
        """As Caffe: the statistics get lr_mult 0; a spec asking to learn them is an error."""
        specs = self.layer_param.param
        for i in range(len(self.blobs)):
            if i < len(specs):
                if specs[i].lr_mult != 0:
                    raise self.error(f"param {i} has lr_mult {specs[i].lr_mult}; BatchNorm statistics "
                                     "cannot be learned (use lr_mult: 0 or leave param out)", bottom)
            else:
                specs.append(ParamSpec(lr_mult=0.0))

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.ndim < 2 or x.shape[1] != self.channels:
            raise self.error(f"expects (N, {self.channels}, ...) to match its statistics", bottom)
        if self._key != (x.shape, x.dtype):
            xp = backend.xp_of(x.data)
            self._xnorm = xp.empty(x.shape, dtype=x.dtype)
            self._key = (x.shape, x.dtype)
        top[0].reshape(x.shape)

    def _view(self, a):
        """(N, C, S) view with S the product of the spatial axes."""
        return a.reshape(a.shape[0], self.channels, -1)

    def forward(self, bottom, top):
        x = self._view(bottom[0].data)
        xp = backend.xp_of(x)
        t = x.dtype.type
        xn = self._view(self._xnorm)
        if self.use_global_stats:
            s = float(self.blobs[2].data[0])
            factor = 0.0 if s == 0 else 1.0 / s
            mean = self.blobs[0].data * t(factor)
            var = self.blobs[1].data * t(factor)
            xp.subtract(x, mean[:, None], out=xn)
        elif self._sync is not None:
            m = x.shape[0] * x.shape[2] * self._sync.size
            mean = (self._global_sum(x.sum(axis=(0, 2), dtype=xp.float64)) / m).astype(x.dtype)
            xp.subtract(x, mean[:, None], out=xn)
            var = (self._global_sum((xn * xn).sum(axis=(0, 2), dtype=xp.float64)) / m) \
                .astype(x.dtype)
        else:
            mean = x.mean(axis=(0, 2))
            xp.subtract(x, mean[:, None], out=xn)
            var = (xn * xn).mean(axis=(0, 2))
            m = x.shape[0] * x.shape[2]
        if not self.use_global_stats:
            correction = m / (m - 1) if m > 1 else 1.0
            self.blobs[2].data[...] = self.blobs[2].data * t(self.maf) + 1
            self.blobs[0].data[...] = mean + t(self.maf) * self.blobs[0].data
            self.blobs[1].data[...] = t(correction) * var + t(self.maf) * self.blobs[1].data
        self._inv_std = 1.0 / xp.sqrt(var + t(self.eps))
        xn *= self._inv_std[:, None]
        top[0].data[...] = self._xnorm

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = self._view(top[0].diff)
        dx = self._view(bottom[0].diff)
        inv_std = self._inv_std[:, None]
        if self.use_global_stats:
            backend.xp_of(dy).multiply(dy, inv_std, out=dx)
            return
        y = self._view(self._xnorm)
        if self._sync is not None:
            xp = backend.xp_of(dy)
            m = dy.shape[0] * dy.shape[2] * self._sync.size
            sums = self._global_sum(xp.concatenate([dy.sum(axis=(0, 2), dtype=xp.float64),
                                                    (dy * y).sum(axis=(0, 2), dtype=xp.float64)]))
            means = (sums / m).astype(dy.dtype)
            mean_dy, mean_dy_y = means[:self.channels, None], means[self.channels:, None]
        else:
            mean_dy = dy.mean(axis=(0, 2))[:, None]
            mean_dy_y = (dy * y).mean(axis=(0, 2))[:, None]
        # dy may alias dx (in place): finish reading dy before writing dx.
        g = dy - mean_dy
        g -= y * mean_dy_y
        g *= inv_std
        dx[...] = g

    def _global_sum(self, values):
        """Elementwise sum of `values` (float64) over the replicas (on the host for MPI)."""
        xp = backend.xp_of(values)
        return xp.asarray(self._sync.allreduce(backend.asnumpy(values)))
