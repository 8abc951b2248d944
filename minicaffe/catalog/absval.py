"""AbsVal layer (Caffe's AbsValLayer)."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("AbsVal")
class AbsVal(Layer):
    """y = |x|, elementwise; dL/dx = dL/dy * sign(x).

    bottom[0]: any shape; top[0]: same shape. Not in place: backward needs the sign of x.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise self.error("cannot run in place (top and bottom are the same blob); "
                             "backward needs the sign of the input", bottom)

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        backend.xp_of(bottom[0].data).abs(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data
        bottom[0].diff[...] = top[0].diff * backend.xp_of(x).sign(x)
