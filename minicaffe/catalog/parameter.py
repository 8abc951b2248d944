"""Parameter layer (Caffe's ParameterLayer): a learnable blob exposed as a top."""
from minicaffe.blob import Blob
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Parameter")
class Parameter(Layer):
    """top[0] = blobs[0], a learnable blob of `parameter_param.shape` (zeros until trained or
    loaded; Caffe gives it no filler either).

    No bottoms. Forward copies the blob into the top (so an in-place consumer cannot change
    the parameter); backward adds the top's diff into blobs[0].diff. Caffe shares the top's
    diff with the blob instead, so its consumers' writes replace the parameter's gradient;
    adding keeps the solver's contract (diffs accumulate, e.g. over iter_size).
    Raises LayerSetupError for a negative dimension.
    """

    exact_bottoms = 0
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.parameter_param
        shape = tuple(int(d) for d in p.shape.dim)
        if any(d < 0 for d in shape):
            raise self.error(f"parameter_param.shape {list(shape)} has a negative dimension",
                             at=(p, "shape"))
        self.blobs = [Blob(shape, dtype=top[0].dtype, name="parameter")]

    def reshape(self, bottom, top):
        top[0].reshape(self.blobs[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data

    def backward(self, top, propagate_down, bottom):
        if self.param_needs_diff(0):
            self.blobs[0].diff[...] += top[0].diff
