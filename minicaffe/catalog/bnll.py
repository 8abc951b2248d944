"""BNLL layer (Caffe's BNLLLayer): the binomial normal log likelihood, i.e. softplus."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("BNLL")
class BNLL(Layer):
    """y = log(1 + exp(x)), elementwise, computed as max(x, 0) + log1p(exp(-|x|)) so that no
    exp overflows (Caffe splits at x > 0 the same way).

    dL/dx = dL/dy * sigmoid(x). Backward reads y only: sigmoid(x) = 1 - exp(-y), taken as
    -expm1(-y) to stay accurate where y is tiny (x very negative). Caffe clips x at 50 before
    its exp; the two agree to 1e-21 there. bottom[0]: any shape; top[0]: same shape; safe in
    place.
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        xp = backend.xp_of(x)
        softplus_tail = xp.log1p(xp.exp(-xp.abs(x)))
        xp.maximum(x, 0, out=y)
        y += softplus_tail

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        xp = backend.xp_of(y)
        sig = xp.expm1(-y)
        sig *= -1
        xp.multiply(top[0].diff, sig, out=bottom[0].diff)
