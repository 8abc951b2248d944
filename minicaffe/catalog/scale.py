"""Scale layer (Caffe's ScaleLayer): per-position multiplier, optionally with a bias."""
from minicaffe import backend, fillers
from minicaffe.blob import Blob
from minicaffe.catalog._broadcast import broadcast_dims, param_shape
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Scale")
class Scale(Layer):
    """y = x * s (+ b), s broadcast over the axes it does not span.

    bottom[0]: any shape. With one bottom, s is blobs[0] of shape
    bottom[0].shape[axis : axis + num_axes] (num_axes -1: to the end; 0: a scalar), filled by
    `filler` (constant 1 when not given); with two bottoms s is bottom[1], whose shape must equal
    bottom[0].shape[axis : axis + bottom[1].ndim]. With `bias_term` a bias of s's shape follows
    (filled by bias_filler, constant 0 by default). top[0]: bottom[0]'s shape; safe in place.
    Backward: dx = dy * s; ds = sum over broadcast axes of dy * x (overwrites bottom[1].diff,
    adds into blobs[0].diff); db = sum of dy.
    """

    min_bottoms, max_bottoms = 1, 2
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.scale_param
        dtype = bottom[0].dtype
        self.blobs = []
        if len(bottom) == 1:
            shape = param_shape(self, bottom, p.axis, p.num_axes)
            scale = Blob(shape, dtype=dtype, name="scale")
            if p.has("filler"):
                fillers.fill(scale, p.filler)
            else:
                scale.data[...] = 1               # identity unless a filler says otherwise
            self.blobs.append(scale)
            operand_shape = shape
        else:
            operand_shape = tuple(bottom[1].shape)
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            bias = Blob(operand_shape, dtype=dtype, name="bias")
            fillers.fill(bias, p.bias_filler)
            self.blobs.append(bias)
        self._saved_x = None

    def _scale_blob(self, bottom):
        return bottom[1] if len(bottom) == 2 else self.blobs[0]

    def reshape(self, bottom, top):
        s = self._scale_blob(bottom)
        name = "bottom[1] (the scale)" if len(bottom) == 2 else "the scale blob"
        self.dims = broadcast_dims(self, bottom, self.layer_param.scale_param.axis, s.shape, name)
        top[0].reshape(bottom[0].shape)

    def _s3(self, a):
        return a.reshape(1, self.dims[1], 1)

    def _v3(self, a):
        return a.reshape(self.dims)

    def forward(self, bottom, top):
        x = bottom[0].data
        xp = backend.xp_of(x)
        if top[0] is bottom[0]:                   # backward needs x for ds: keep a copy
            if self._saved_x is None or self._saved_x.shape != x.shape or self._saved_x.dtype != x.dtype:
                self._saved_x = xp.empty_like(x)
            self._saved_x[...] = x
        s = self._s3(self._scale_blob(bottom).data)
        y = self._v3(top[0].data)
        xp.multiply(self._v3(x), s, out=y)
        if self.bias_term:
            y += self._s3(self.blobs[-1].data)

    def backward(self, top, propagate_down, bottom):
        dy = self._v3(top[0].diff)
        in_place = top[0] is bottom[0]
        if self.bias_term:
            self.blobs[-1].diff[...] += dy.sum(axis=(0, 2)).reshape(self.blobs[-1].shape)
        s_blob = self._scale_blob(bottom)
        want_ds = len(bottom) == 1 or (len(propagate_down) > 1 and propagate_down[1])
        if want_ds:
            x = self._v3(self._saved_x if in_place else bottom[0].data)
            ds = (dy * x).sum(axis=(0, 2)).reshape(s_blob.shape)
            if len(bottom) == 2:
                s_blob.diff[...] = ds
            else:
                s_blob.diff[...] += ds
        if propagate_down[0]:
            dx = self._v3(bottom[0].diff)
            backend.xp_of(dy).multiply(dy, self._s3(s_blob.data), out=dx)
