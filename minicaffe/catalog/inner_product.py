"""InnerProduct layer (Caffe's InnerProductLayer, a fully connected layer)."""
from minicaffe import fillers, ops
from minicaffe.blob import Blob
from minicaffe.catalog.base import Layer, register_layer


@register_layer("InnerProduct")
class InnerProduct(Layer):
    """y = x W^T + b on the bottom flattened from `axis` (default 1).

    bottom[0]: (d0, ..., d_{axis-1}, d_axis, ...) seen as (M, K) with M = d0*...*d_{axis-1},
    K = d_axis*...; top[0]: (d0, ..., d_{axis-1}, num_output).
    blobs[0]: W (num_output, K), or (K, num_output) when `transpose`; blobs[1]: b (num_output,).
    Backward: dW += dy^T x (transposed: x^T dy), db += sum_rows dy, dx = dy W (dy W^T).
    Raises LayerSetupError when K differs from what the (possibly shared) weights expect.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.inner_product_param
        self.num_output, self.transpose = int(p.num_output), bool(p.transpose)
        if self.num_output <= 0:
            raise self.error("num_output must be given and positive", bottom)
        self.axis = self._axis(bottom)
        K = self._inputs(bottom[0].shape)
        shape = (K, self.num_output) if self.transpose else (self.num_output, K)
        weight = Blob(shape, dtype=bottom[0].dtype, name="weight")
        fillers.fill(weight, p.weight_filler)
        self.blobs = [weight]
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            bias = Blob((self.num_output,), dtype=bottom[0].dtype, name="bias")
            fillers.fill(bias, p.bias_filler)
            self.blobs.append(bias)

    def _axis(self, bottom):
        axis, ndim = self.layer_param.inner_product_param.axis, bottom[0].ndim
        if not -ndim <= axis < ndim:
            raise self.error(f"axis={axis} is out of range for a {ndim}-D bottom", bottom)
        return axis % ndim

    @staticmethod
    def _prod(dims):
        n = 1
        for d in dims:
            n *= d
        return n

    def _inputs(self, shape):
        return self._prod(shape[self.axis:])

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        K = self._inputs(shape) if len(shape) > self.axis else None
        w_shape = tuple(self.blobs[0].shape)
        want = w_shape[0] if self.transpose else w_shape[1]
        if K != want:
            raise self.error(f"bottom '{self._bottom_name()}' gives {K} inputs per sample; weights "
                             f"expect {want} (shape {w_shape})", bottom)
        top[0].reshape(shape[:self.axis] + (self.num_output,))

    def _bottom_name(self):
        names = list(self.layer_param.bottom)
        return names[0] if names else "0"

    def _x2d(self, blob, attr="data"):
        shape = blob.shape
        return getattr(blob, attr).reshape(self._prod(shape[:self.axis]), self._prod(shape[self.axis:]))

    def forward(self, bottom, top):
        x = self._x2d(bottom[0])
        y = top[0].data.reshape(x.shape[0], self.num_output)
        ops.gemm(x, self.blobs[0].data, out=y, trans_b=not self.transpose)
        if self.bias_term:
            y += self.blobs[1].data

    def bind_forward(self, bottom, top, program):
        x = self._x2d(bottom[0])
        y = top[0].data.reshape(x.shape[0], self.num_output)
        bias = self.blobs[1].data if self.bias_term else None
        program.linear_forward(x, self.blobs[0].data, bias, y, trans_w=not self.transpose)
        return True

    def backward(self, top, propagate_down, bottom):
        x = self._x2d(bottom[0])
        dy = top[0].diff.reshape(x.shape[0], self.num_output)
        w = self.blobs[0]
        if self.transpose:     # W (K, num_output): dW += x^T dy
            ops.gemm(x, dy, out=w.diff, beta=1.0, trans_a=True)
        else:                  # W (num_output, K): dW += dy^T x
            ops.gemm(dy, x, out=w.diff, beta=1.0, trans_a=True)
        if self.bias_term:
            self.blobs[1].diff[...] += dy.sum(axis=0)
        if propagate_down[0]:
            dx = self._x2d(bottom[0], "diff")
            ops.gemm(dy, w.data, out=dx, trans_b=self.transpose)
