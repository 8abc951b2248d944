"""Eltwise: elementwise SUM (with coefficients), PROD or MAX of equally shaped bottoms."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Eltwise")
class Eltwise(Layer):
    """SUM: top = Σ_i coeff_i · bottom_i (coeff default 1); PROD: top = Π_i bottom_i;
    MAX: top = max_i bottom_i, the gradient going to the winning bottom only.

    MAX ties follow Caffe: between bottoms 0 and 1 the later wins, after that the earlier keeps
    its place. PROD's gradient is Π_{j≠i} bottom_j (`stable_prod_grad`, default) or
    top / bottom_i. bottom[i]: all the same shape (at least 2); top[0]: that shape.
    """

    min_bottoms = 2
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.eltwise_param
        self.operation = p.operation
        if self.operation not in ("SUM", "PROD", "MAX"):
            raise self.error(f"operation must be SUM, PROD or MAX, got {self.operation!r}")
        coeff = [float(c) for c in p.coeff]
        if coeff and self.operation != "SUM":
            raise self.error(f"coeff is only for operation SUM, not {self.operation}")
        if coeff and len(coeff) != len(bottom):
            raise self.error(f"coeff gives {len(coeff)} values for {len(bottom)} bottoms", bottom)
        self.coeff = coeff or [1.0] * len(bottom)
        self.stable_prod_grad = bool(p.stable_prod_grad)

    def reshape(self, bottom, top):
        shape = tuple(bottom[0].shape)
        for i, b in enumerate(bottom[1:], 1):
            if tuple(b.shape) != shape:
                raise self.error(f"bottom {i} has shape {tuple(b.shape)}, bottom 0 has {shape}; "
                                 f"Eltwise needs equal shapes", bottom)
        top[0].reshape(shape)

    def forward(self, bottom, top):
        xp = backend.xp_of(bottom[0].data)
        out = top[0].data
        if self.operation == "SUM":
            xp.multiply(bottom[0].data, self.coeff[0], out=out)
            for b, c in zip(bottom[1:], self.coeff[1:]):
                out += c * b.data if c != 1.0 else b.data
        elif self.operation == "PROD":
            xp.multiply(bottom[0].data, bottom[1].data, out=out)
            for b in bottom[2:]:
                out *= b.data
        else:
            a, b = bottom[0].data, bottom[1].data
            mask = xp.where(a > b, 0, 1).astype(xp.int32)
            xp.maximum(a, b, out=out)
            for k, blob in enumerate(bottom[2:], 2):
                better = blob.data > out
                mask[better] = k
                xp.maximum(out, blob.data, out=out)
            self._mask = mask

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        for i, (b, down) in enumerate(zip(bottom, propagate_down)):
            if not down:
                continue
            if self.operation == "SUM":
                xp = backend.xp_of(dy)
                xp.multiply(dy, self.coeff[i], out=b.diff)
            elif self.operation == "PROD":
                if self.stable_prod_grad:
                    grad = None
                    for j, other in enumerate(bottom):
                        if j != i:
                            grad = other.data.copy() if grad is None else grad * other.data
                    b.diff[...] = grad * dy
                else:
                    b.diff[...] = top[0].data / b.data * dy
            else:
                b.diff[...] = dy * (self._mask == i)
