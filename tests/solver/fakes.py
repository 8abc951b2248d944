"""A tiny least-squares 'net' honouring the Net contract the solver uses, so solver tests
check the solver alone (the real Net has its own tests; tests/solver/test_solver_net.py runs
the solver on it)."""
import numpy as np

from minicaffe.blob import Blob
from minicaffe.net import ParamInfo
from minicaffe.prototxt.message import message_class

SolverParameter = message_class("SolverParameter")
ParamSpec = message_class("ParamSpec")
LayerParameter = message_class("LayerParameter")
BlockGroupLassoSpec = message_class("BlockGroupLassoSpec")


class FakeLayer:
    def __init__(self, name, type_, blobs, connectivity_mode="CONNECTED", loss_weights=()):
        self.name, self.type, self.blobs = name, type_, blobs
        self.layer_param = LayerParameter(name=name, type=type_,
                                          connectivity_mode=connectivity_mode)
        self.loss_weights = list(loss_weights)


class LeastSquaresNet:
    """loss = 1/(2B) * ||X_b W^T + bias - Y_b||^2 over a batch b of rows.

    W has shape `w_shape` (its rows are outputs; it is flattened to (out, in) for the product).
    batch=None uses every row; otherwise each forward draws `batch` rows with np.random (so the
    global RNG state matters for resuming). Set `poison` to make the output non-finite.
    """

    def __init__(self, X, Y, w_shape=None, batch=None, weight_spec=None, bias_spec=None,
                 group=1, connectivity_mode="CONNECTED", dtype=np.float64, w0=None):
        self.X, self.Y, self.batch = np.asarray(X, dtype), np.asarray(Y, dtype), batch
        out, k = self.Y.shape[1], self.X.shape[1]
        w_shape = w_shape or (out, k)
        self.w = Blob(w_shape, dtype=dtype, name="w")
        self.b = Blob((out,), dtype=dtype, name="b")
        self.w.data[...] = (w0 if w0 is not None else
                            np.random.default_rng(0).standard_normal(w_shape) * 0.1)
        self.layers = [FakeLayer("fc", "InnerProduct", [self.w, self.b], connectivity_mode),
                       FakeLayer("loss", "EuclideanLoss", [], loss_weights=[1.0])]
        self._layer_names = ["fc", "loss"]
        self.top_names = {"fc": ["pred"], "loss": ["loss"]}
        self.loss_blob = Blob((), dtype=dtype, name="loss")
        self.pred = Blob((1,), dtype=dtype, name="pred")
        self.blobs = {"pred": self.pred, "loss": self.loss_blob}
        self.outputs = ["loss"]
        self.param_infos = [
            ParamInfo(self.w, "fc", "InnerProduct", 0, weight_spec or ParamSpec(), group, True),
            ParamInfo(self.b, "fc", "InnerProduct", 1, bias_spec or ParamSpec(), 1, True)]
        self.learnable_params = [self.w, self.b]
        self.poison = False
        self.forward_calls = 0

    def _batch(self):
        if self.batch is None:
            return self.X, self.Y
        idx = np.random.randint(0, len(self.X), size=self.batch)
        return self.X[idx], self.Y[idx]

    def _forward(self):
        self.forward_calls += 1
        X, Y = self._batch()
        W = self.w.data.reshape(self.w.shape[0], -1)
        pred = X @ W.T + self.b.data
        if self.poison:
            pred = pred * np.inf
        self.pred.reshape(pred.shape)
        self.pred.data[...] = pred
        r = pred - Y
        self.loss_blob.data[...] = 0.5 * (r * r).sum() / len(X)
        return X, r

    def forward(self):
        self._forward()
        return {"loss": self.loss_blob.data}

    @property
    def loss(self):
        return float(self.loss_blob.data)

    def forward_backward(self):
        with np.errstate(all="ignore"):           # the poisoned net is meant to overflow
            X, r = self._forward()
            self.w.diff[...] += (r.T @ X / len(X)).reshape(self.w.shape)
            self.b.diff[...] += r.sum(axis=0) / len(X)
        return float(self.loss_blob.data)

    def gradient(self, w, b):
        """Full-batch gradient at (w, b) in float64 (for hand-computed expectations)."""
        W = w.reshape(w.shape[0], -1)
        r = self.X @ W.T + b - self.Y
        return (r.T @ self.X / len(self.X)).reshape(w.shape), r.sum(axis=0) / len(self.X)

    def clear_param_diffs(self):
        for blob in self.learnable_params:
            blob.diff[...] = 0

    def first_nonfinite_output(self):
        if not np.isfinite(self.pred.data).all():
            return ("fc", "pred")
        return None

    def share_with(self, other):
        self.w.share_data(other.w)
        self.b.share_data(other.b)

    def save(self, path):
        with open(path, "wb") as f:
            np.savez(f, w=self.w.data, b=self.b.data)

    def copy_from(self, path):
        with np.load(path) as z:
            self.w.data[...] = z["w"]
            self.b.data[...] = z["b"]


def solver_param(**kw):
    """A SolverParameter with SGD defaults for the fake net."""
    kw.setdefault("base_lr", 0.1)
    kw.setdefault("lr_policy", "fixed")
    kw.setdefault("max_iter", 10)
    return SolverParameter(**kw)


def planted_problem(n=200, k=8, useful=4, out=3, seed=0):
    """Y depends only on the first `useful` inputs (columns of W); the rest are noise inputs."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, k))
    W = np.zeros((out, k))
    W[:, :useful] = rng.standard_normal((out, useful))
    Y = X @ W.T + 0.01 * rng.standard_normal((n, out))
    return X, Y, W
