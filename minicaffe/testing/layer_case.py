"""LayerCase: the shared test harness for layers.

A test class declares the layer and a plain-NumPy reference; the harness builds the layer
through `create_layer`, runs setup/reshape/forward on float64 blobs, compares every top with
`reference`, and checks backward against float64 central differences for every bottom and every
param blob (exhaustively for small blobs, along random directions for large ones), with the
scalar loss L = sum_i sum(top_i * R_i) for fixed random R_i.

    class TestReLU(LayerCase):
        type, params, bottom_shapes = "ReLU", {"negative_slope": 0.1}, [(2, 3, 4, 5)]
        kinks = [0.0]                      # inputs near these points are resampled

        def reference(self, x):           # plain NumPy, no minicaffe code
            return np.where(x > 0, x, 0.1 * x)

Class attributes (all optional except `type`, `bottom_shapes`, `reference`):
  params            dict for the layer's `<x>_param` (nested dicts for sub-messages such as
                    weight_filler), a prototxt body string ("pooling_param { pool: MAX ... }"),
                    or a ready LayerParameter.
  param_field       name of the `<x>_param` field when it is not derived from `type`.
  layer_fields      extra LayerParameter keyword arguments (e.g. {"loss_weight": [2.0]}).
  phase             "TRAIN" (default) or "TEST".
  num_tops          number of top blobs (default 1).
  kinks             input values where the layer is not differentiable; inputs closer than
                    `kink_margin` are resampled.
  check_gradient    False for layers without a gradient (Accuracy, data layers...).
  gradient_bottoms  indices of bottoms to check (default: all); e.g. [0] when bottom 1 is a label.
  gradient_params   indices of param blobs to check (default: all); [] for state blobs.
  in_place          True when the layer must also work with top is bottom (ReLU, Dropout, ...).
  repeatable        False when each forward legitimately gives new values (MemoryData moves to
                    its next batch); then the repeated-forward test is not generated.
  forward_rtol/atol tolerances of the float64 forward comparison.
  grad_rtol/atol    tolerances of the gradient check.
Generated tests that cannot apply to a case are not generated rather than skipped (see
`LayerCase.applies`; tests/conftest.py leaves them out at collection): the in-place test
without `in_place`, the gradient tests without `check_gradient`, the param-gradient test for a
layer with no learnable blob to check, the bottom-gradient test with no bottom to check.
Hooks (override when random normal data is wrong for the layer):
  make_bottoms(rng) -> list of float64 arrays, init_params(blobs, rng) (default: N(0, 1) into
  every param blob), reference(*bottoms) -> array or tuple of arrays; inside `reference`,
  `self.param_data` holds copies of the layer's param blobs as they were before forward.
"""
import importlib

import numpy as np
import pytest

from minicaffe.blob import Blob
from minicaffe.catalog import create_layer

#: Every LayerCase subclass by layer type; the coverage meta-test reads it.
CASES = {}

# `<x>_param` field of each Caffe type whose name is not the plain snake_case of the type.
_PARAM_FIELDS = {
    "ReLU": "relu_param", "TanH": "tanh_param", "LRN": "lrn_param", "AbsVal": None,
    "InnerProduct": "inner_product_param", "BatchNorm": "batch_norm_param",
    "SoftmaxWithLoss": "softmax_param", "HDF5Data": "hdf5_data_param",
    "MemoryData": "memory_data_param", "DummyData": "dummy_data_param",
    "ImageData": "image_data_param", "EuclideanLoss": "loss_param",
    "PReLU": "prelu_param", "ArgMax": "argmax_param", "BNLL": None, "BatchReindex": None,
    "Filter": None, "Im2col": "convolution_param", "MultinomialLogisticLoss": "loss_param",
    "SigmoidCrossEntropyLoss": "loss_param",
}

SEED = 4321


def _snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def param_field_of(type_name):
    """The LayerParameter field holding `type_name`'s parameters (e.g. 'pooling_param')."""
    if type_name in _PARAM_FIELDS:
        return _PARAM_FIELDS[type_name]
    return _snake(type_name) + "_param"


def build_message(cls, values):
    """An instance of message class `cls` from a dict; nested dicts become sub-messages of the
    type the field's default instance has."""
    default = cls()
    kwargs = {}
    for key, value in values.items():
        if isinstance(value, dict):
            value = build_message(type(getattr(default, key)), value)
        kwargs[key] = value
    return cls(**kwargs)


def prototxt_module():
    return importlib.import_module("minicaffe.prototxt")


def layer_parameter(name, type_name, bottoms, tops, params=None, param_field=None, **fields):
    """A LayerParameter for one layer under test (see the module docstring for `params`)."""
    proto = prototxt_module()
    if params is not None and not isinstance(params, (dict, str)):
        return params                                       # already a LayerParameter
    if isinstance(params, str):
        body = f'name: "{name}" type: "{type_name}" '
        body += " ".join(f'bottom: "{b}"' for b in bottoms) + " "
        body += " ".join(f'top: "{t}"' for t in tops) + " " + params
        net = proto.parse_net("layer { " + body + " }")
        return net.layer[0]
    kwargs = dict(name=name, type=type_name, bottom=list(bottoms), top=list(tops), **fields)
    if params:
        field = param_field or param_field_of(type_name)
        if field is None:
            raise AssertionError(f"layer type {type_name} takes no parameters, got {params}")
        default = getattr(proto.LayerParameter(), field)
        kwargs[field] = build_message(type(default), params)
    return proto.LayerParameter(**kwargs)


class LayerCase:
    """Base class of layer tests; see the module docstring."""

    type = None
    params = None
    param_field = None
    layer_fields = {}
    bottom_shapes = []
    phase = "TRAIN"
    num_tops = 1
    kinks = ()
    kink_margin = 1e-2
    check_gradient = True
    gradient_bottoms = None
    gradient_params = None
    in_place = False
    repeatable = True
    forward_rtol, forward_atol = 1e-9, 1e-10
    grad_rtol, grad_atol = 1e-5, 1e-7
    grad_step = 1e-5
    exhaustive_limit = 300          # blobs up to this many values are checked element by element
    random_directions = 6

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.type is not None:
            CASES.setdefault(cls.type, []).append(cls)

    @classmethod
    def applies(cls, test_name):
        """Whether the harness's `test_name` applies to this case (False: it is not a test
        here, so it is not collected; a subclass's own override always applies)."""
        own = any(test_name in k.__dict__ for k in cls.__mro__
                  if k is not LayerCase and issubclass(k, LayerCase))
        if own or not hasattr(LayerCase, test_name):
            return True
        if test_name == "test_in_place_matches":
            return bool(cls.in_place)
        if test_name == "test_forward_is_repeatable":
            return bool(cls.repeatable)
        if test_name in ("test_gradient_bottoms", "test_gradient_params"):
            if not cls.check_gradient:
                return False
            declared = cls.gradient_bottoms if test_name == "test_gradient_bottoms" \
                else cls.gradient_params
            if declared is not None:
                return len(declared) > 0
            counts = cls._built_counts()
            if counts is None:              # the build fails: let the test report why
                return True
            return counts[test_name == "test_gradient_params"] > 0
        return True

    @classmethod
    def _built_counts(cls):
        """(bottoms, param blobs) of one build of this case, cached; None if it fails."""
        if "_counts" not in cls.__dict__:
            try:
                layer, bottom, _ = cls().build()
                cls._counts = (len(bottom), len(layer.blobs))
            except Exception:  # noqa: BLE001  (reported by the test that runs the build)
                cls._counts = None
        return cls._counts

    # -- hooks ------------------------------------------------------------------------------
    def make_bottoms(self, rng):
        out = []
        for shape in self.bottom_shapes:
            x = rng.standard_normal(shape)
            for _ in range(100):
                near = np.zeros(x.shape, bool)
                for k in self.kinks:
                    near |= np.abs(x - k) < self.kink_margin
                if not near.any():
                    break
                x[near] = rng.standard_normal(int(near.sum()))
            out.append(x)
        return out

    def init_params(self, blobs, rng):
        for b in blobs:
            b.data[...] = rng.standard_normal(b.shape)

    def reference(self, *bottoms):
        raise NotImplementedError

    # -- building ---------------------------------------------------------------------------
    def layer_param(self, bottoms=None, tops=None):
        bottoms = bottoms or [f"b{i}" for i in range(len(self.bottom_shapes))]
        tops = tops or [f"t{i}" for i in range(self.num_tops)]
        return layer_parameter("layer_under_test", self.type, bottoms, tops, self.params,
                               self.param_field, **self.layer_fields)

    def build(self, dtype=np.float64, bottom_values=None, seed=0, init_params=True):
        """(layer, bottom blobs, top blobs) after setup and reshape; param blobs overwritten by
        `init_params` unless `init_params=False` (then they hold the layer's filler values)."""
        rng = np.random.default_rng(seed)
        values = bottom_values if bottom_values is not None else self.make_bottoms(rng)
        bottom = []
        for i, v in enumerate(values):
            b = Blob(v.shape, dtype=dtype, name=f"b{i}")
            b.data[...] = v
            bottom.append(b)
        top = [Blob((), dtype=dtype, name=f"t{i}") for i in range(self.num_tops)]
        layer = create_layer(self.layer_param(), self.phase)
        layer.check_counts(bottom, top)
        np.random.seed(SEED)
        layer.setup(bottom, top)
        for blob in layer.blobs:
            blob.astype(dtype)
        if init_params:
            self.init_params(layer.blobs, rng)
        layer.reshape(bottom, top)
        return layer, bottom, top

    def run_forward(self, layer, bottom, top):
        np.random.seed(SEED)                     # Dropout & co. draw the same mask every time
        layer.reshape(bottom, top)
        layer.forward(bottom, top)

    def run_forward_backward(self, x, rng):
        """Build on the single bottom `x`, run forward, then backward from a random top
        gradient drawn from `rng`; returns (layer, bottom, top, dy)."""
        layer, bottom, top = self.build(bottom_values=[x])
        self.run_forward(layer, bottom, top)
        dy = rng.standard_normal(top[0].shape)
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        return layer, bottom, top, dy

    def _reference_tops(self, layer, bottom):
        self.param_data = [np.array(b.data, dtype=np.float64) for b in layer.blobs]
        out = self.reference(*[np.array(b.data, dtype=np.float64) for b in bottom])
        return list(out) if isinstance(out, (tuple, list)) else [out]

    # -- tests ------------------------------------------------------------------------------
    def test_forward_matches_reference(self):
        layer, bottom, top = self.build()
        expected = self._reference_tops(layer, bottom)
        self.run_forward(layer, bottom, top)
        assert len(expected) == len(top), f"reference gives {len(expected)} tops, layer {len(top)}"
        for i, (t, e) in enumerate(zip(top, expected)):
            e = np.asarray(e, dtype=np.float64)
            assert tuple(t.shape) == e.shape, f"top {i}: shape {t.shape}, reference {e.shape}"
            np.testing.assert_allclose(t.data, e, rtol=self.forward_rtol, atol=self.forward_atol,
                                       err_msg=f"{self.type} top {i}")

    def test_forward_float32(self):
        layer, bottom, top = self.build(dtype=np.float32)
        expected = self._reference_tops(layer, bottom)
        self.run_forward(layer, bottom, top)
        for i, (t, e) in enumerate(zip(top, expected)):
            assert t.data.dtype == np.float32, f"top {i} is {t.data.dtype} for float32 bottoms"
            np.testing.assert_allclose(t.data, np.asarray(e), rtol=2e-4, atol=2e-5,
                                       err_msg=f"{self.type} float32 top {i}")

    def test_forward_is_repeatable(self):
        layer, bottom, top = self.build()
        self.run_forward(layer, bottom, top)
        first = [np.array(t.data) for t in top]
        self.run_forward(layer, bottom, top)
        for i, (t, f) in enumerate(zip(top, first)):
            np.testing.assert_array_equal(t.data, f, err_msg=f"{self.type} top {i} on 2nd forward")

    def test_in_place_matches(self):
        layer, bottom, top = self.build()
        weights = self._top_weights(top)
        self.run_forward(layer, bottom, top)
        self._backward(layer, top, bottom, weights)
        want_top, want_diff = np.array(top[0].data), np.array(bottom[0].diff)
        # same layer object, top is bottom: forward overwrites x, backward overwrites dy
        x = Blob(bottom[0].shape, dtype=np.float64)
        x.data[...] = bottom[0].data
        self.run_forward(layer, [x], [x])
        np.testing.assert_allclose(x.data, want_top, rtol=1e-12, atol=1e-14)
        x.diff[...] = weights[0]
        layer.backward([x], [True], [x])
        np.testing.assert_allclose(x.diff, want_diff, rtol=1e-10, atol=1e-12)

    def _top_weights(self, top):
        rng = np.random.default_rng(99)
        return [rng.standard_normal(t.shape) for t in top]

    def _loss(self, layer, bottom, top, weights):
        self.run_forward(layer, bottom, top)
        return sum(float(np.sum(np.asarray(t.data, np.float64) * w)) for t, w in zip(top, weights))

    def _backward(self, layer, top, bottom, weights, checked=None):
        for t, w in zip(top, weights):
            t.diff[...] = w
        checked = range(len(bottom)) if checked is None else checked
        propagate = [i in checked for i in range(len(bottom))]
        layer.backward(top, propagate, bottom)

    def _check_blob(self, what, blob_values, analytic, loss_at):
        """Compare `analytic` (array) with central differences of `loss_at(values)`."""
        base = np.array(blob_values, dtype=np.float64)
        h = self.grad_step
        rng = np.random.default_rng(7)
        if base.size <= self.exhaustive_limit:
            directions = ((idx, None) for idx in np.ndindex(base.shape))
        else:
            directions = ((None, rng.standard_normal(base.shape)) for _ in range(self.random_directions))
        for idx, v in directions:
            step = np.zeros_like(base)
            if idx is not None:
                step[idx] = h
                ana = analytic[idx]
            else:
                step = h * v
                ana = float(np.sum(analytic * v))
            numeric = (loss_at(base + step) - loss_at(base - step)) / (2 * h)
            tol = self.grad_atol + self.grad_rtol * max(abs(numeric), abs(ana))
            where = f"index {idx}" if idx is not None else "a random direction"
            assert abs(numeric - ana) <= tol, (
                f"{self.type}: d loss / d {what} at {where}: analytic {ana:.10g}, "
                f"numeric {numeric:.10g} (shape {base.shape})")

    def test_gradient_bottoms(self):
        layer, bottom, top = self.build()
        weights = self._top_weights(top)
        checked = list(range(len(bottom))) if self.gradient_bottoms is None else self.gradient_bottoms
        assert checked, f"{self.type}: no bottom to check (LayerCase.applies says so)"
        self.run_forward(layer, bottom, top)
        for i in checked:
            bottom[i].diff[...] = np.nan                  # bottom diffs must be overwritten
        self._backward(layer, top, bottom, weights, checked)
        for i in checked:
            analytic = np.array(bottom[i].diff)
            assert np.all(np.isfinite(analytic)), f"{self.type}: bottom {i} diff not fully written"
            original = np.array(bottom[i].data)

            def loss_at(values, i=i):
                bottom[i].data[...] = values
                return self._loss(layer, bottom, top, weights)

            self._check_blob(f"bottom {i}", original, analytic, loss_at)
            bottom[i].data[...] = original

    def test_gradient_params(self):
        layer, bottom, top = self.build()
        checked = list(range(len(layer.blobs))) if self.gradient_params is None else self.gradient_params
        assert checked, f"{self.type}: no param blob to check (LayerCase.applies says so)"
        weights = self._top_weights(top)
        self.run_forward(layer, bottom, top)
        for j in checked:
            layer.blobs[j].diff[...] = 0.5                  # param diffs are accumulated into
        self._backward(layer, top, bottom, weights, checked=[])
        for j in checked:
            analytic = np.array(layer.blobs[j].diff) - 0.5
            original = np.array(layer.blobs[j].data)

            def loss_at(values, j=j):
                layer.blobs[j].data[...] = values
                if hasattr(layer, "refresh_weights"):
                    layer.refresh_weights()
                return self._loss(layer, bottom, top, weights)

            self._check_blob(f"param blob {j}", original, analytic, loss_at)
            layer.blobs[j].data[...] = original


def expect_setup_error(case_cls, bottom_shapes, *fragments, params=None, phase=None):
    """Build `case_cls`'s layer on `bottom_shapes` and assert LayerSetupError mentioning every
    fragment (layer name, type, expectation)."""
    from minicaffe.errors import LayerSetupError

    case = case_cls()
    if params is not None:
        case.params = params
    if phase is not None:
        case.phase = phase
    case.bottom_shapes = bottom_shapes
    with pytest.raises(LayerSetupError) as info:
        layer, bottom, top = case.build()
        case.run_forward(layer, bottom, top)
    message = str(info.value)
    for frag in ("layer_under_test", case_cls.type, *fragments):
        assert frag in message, f"error message lacks {frag!r}: {message}"
    return message
