"""Input: tops whose values the user writes (`net.blobs['data'].data[...] = x`)."""
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Input")
class Input(Layer):
    """Creates its tops with `input_param { shape { dim: ... } }`: one shape for every top, or
    one per top. Forward leaves the values alone, so what was written stays between forwards.

    bottom: none; top[i]: the given shape (the user may reshape it; layers follow).
    """

    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom, top):
        shapes = [tuple(int(d) for d in s.dim) for s in self.layer_param.input_param.shape]
        if len(shapes) not in (1, len(top)):
            raise self.error(f"input_param gives {len(shapes)} shapes for {len(top)} tops; "
                             f"give one shape for all or one per top")
        if any(d < 0 for s in shapes for d in s):
            raise self.error(f"negative dimension in input shape {shapes}")
        for i, t in enumerate(top):
            t.reshape(shapes[0] if len(shapes) == 1 else shapes[i])

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def bind_forward(self, bottom, top, program):
        return True                            # the user writes the tops
