"""The inference plan (minicaffe/plan.py) gives what the plain forward gives, wherever it runs.

Every shipped deploy net under every conv_mode, after a reshape, with in-place layers, partial
ranges, float64, changed and shared weights, losses at TEST, layers run from Python (one of
which moves a blob), backward afterwards, and the knobs that turn it off.
"""
import glob
import os

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe import plan as plan_module
from minicaffe.blob import Blob
from minicaffe.errors import KernelError, LayerSetupError
from minicaffe.net import Net
from minicaffe.ops import native
from minicaffe.prototxt import parse_net, read_net

pytestmark = pytest.mark.native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY_NETS = sorted(glob.glob(os.path.join(ROOT, "prototxt", "*", "*deploy*.prototxt")))
CONV_MODES = ["LOWERED_GEMM", "LOWERED_CCNMM", "LOWERED_CSRMM"]


@pytest.fixture(autouse=True)
def _kernels():
    if not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")


def sparsify(net, rng):
    """Random weights (and BatchNorm statistics) with a third of each convolution's filters
    and shape fibres zero, so that compaction removes rows and columns."""
    for layer in net.layers:
        for blob in layer.blobs:
            blob.data[...] = rng.standard_normal(blob.shape) * 0.2
        if layer.type == "BatchNorm":
            layer.blobs[1].data[...] = np.abs(layer.blobs[1].data) + 0.5
            layer.blobs[2].data[...] = 1.0
        if layer.type == "Convolution":
            w = layer.blobs[0].data.reshape(layer.blobs[0].shape[0], -1)
            w[rng.random(w.shape[0]) < 0.34] = 0
            w[:, rng.random(w.shape[1]) < 0.34] = 0


def deploy_net(path, batch=1, conv_mode=None, dtype=np.float32):
    param = read_net(path)
    param.layer[0].input_param.shape[0].dim[0] = batch
    if conv_mode is not None:
        for lp in param.layer:
            if lp.type == "Convolution":
                lp.convolution_param.conv_mode = conv_mode
    return Net(param, caffe.TEST, dtype=dtype)


def both_ways(net, **kwargs):
    """({blob: data} after the plan's forward, the same after the plain forward, the plan's
    returned dict, the plain returned dict)."""
    assert net.use_plan
    got = net.forward(**kwargs)
    planned = {k: np.array(b.data) for k, b in net.blobs.items()}
    planned_out = {k: np.array(v) for k, v in got.items()}
    planner = net._planner
    net.use_plan = False
    try:
        got = net.forward(**kwargs)
        plain = {k: np.array(b.data) for k, b in net.blobs.items()}
        plain_out = {k: np.array(v) for k, v in got.items()}
    finally:
        net._planner = planner                     # the same planner: its plan checks itself
    return planned, plain, planned_out, plain_out


def assert_same(planned, plain, rtol=1e-6, atol=1e-7):
    assert planned.keys() == plain.keys()
    for name in plain:
        assert planned[name].shape == plain[name].shape, name
        np.testing.assert_allclose(planned[name], plain[name], rtol=rtol, atol=atol,
                                   err_msg=f"blob '{name}'")


def randomize_inputs(net, rng):
    for name in net.inputs:
        net.blobs[name].data[...] = rng.random(net.blobs[name].shape)


@pytest.mark.parametrize("conv_mode", CONV_MODES)
@pytest.mark.parametrize("path", DEPLOY_NETS, ids=lambda p: os.path.basename(p)[:-9])
def test_every_deploy_net_every_conv_mode(rng, path, conv_mode):
    net = deploy_net(path, conv_mode=conv_mode)
    sparsify(net, rng)
    randomize_inputs(net, rng)
    planned, plain, out, plain_out = both_ways(net)
    assert_same(planned, plain)
    assert_same(out, plain_out)
    assert net._planner.plan is not None
    # A second forward on new values reuses the plan.
    plan = net._planner.plan
    randomize_inputs(net, rng)
    planned, plain, _, _ = both_ways(net)
    assert_same(planned, plain)
    assert net._planner.plan is plan


@pytest.mark.parametrize("conv_mode", CONV_MODES)
def test_reshape_rebuilds_the_plan(rng, conv_mode):
    path = os.path.join(ROOT, "prototxt", "lenet", "lenet_deploy.prototxt")
    net = deploy_net(path, batch=1, conv_mode=conv_mode)
    sparsify(net, rng)
    net.forward()
    first = net._planner.plan
    # pycaffe style: reshape the input blob, then net.reshape()
    net.blobs["data"].reshape(3, 1, 28, 28)
    net.reshape()
    randomize_inputs(net, rng)
    planned, plain, _, _ = both_ways(net)
    assert planned["prob"].shape == (3, 10)
    assert_same(planned, plain)
    second = net._planner.plan
    assert second is not first
    # forward(data=...) of the new batch size feeds the same plan
    x = rng.random((3, 1, 28, 28)).astype(np.float32)
    planned, plain, out, _ = both_ways(net, data=x)
    assert out["prob"].shape == (3, 10)
    assert_same(planned, plain)
    assert net._planner.plan is second
    # without net.reshape(): the input blob alone changed shape (Caffe reshapes every layer
    # in Forward, and so does the plain forward)
    net.blobs["data"].reshape(1, 1, 28, 28)
    randomize_inputs(net, rng)
    planned, plain, _, _ = both_ways(net)
    assert planned["prob"].shape == (1, 10)
    assert_same(planned, plain)
    assert net._planner.plan is not second


def test_same_shape_forward_keeps_the_plan_and_allocates_nothing(rng):
    net = deploy_net(os.path.join(ROOT, "prototxt", "lenet", "lenet_deploy.prototxt"))
    sparsify(net, rng)
    net.forward(data=rng.random((1, 1, 28, 28)))
    plan, version = net._planner.plan, Blob.layout_version
    arrays = {k: b.data for k, b in net.blobs.items()}
    for _ in range(3):
        net.forward(data=rng.random((1, 1, 28, 28)))
    assert net._planner.plan is plan and Blob.layout_version == version
    assert all(net.blobs[k].data is a for k, a in arrays.items())


BODY = """
layer { name: "conv" type: "Convolution" bottom: "x" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu_copy" type: "ReLU" bottom: "conv" top: "r" relu_param { negative_slope: 0.1 } }
layer { name: "relu_inplace" type: "ReLU" bottom: "r" top: "r" }
layer { name: "drop_copy" type: "Dropout" bottom: "r" top: "d" }
layer { name: "drop_inplace" type: "Dropout" bottom: "d" top: "d" }
layer { name: "pool" type: "Pooling" bottom: "d" top: "pool"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "flat" type: "Flatten" bottom: "pool" top: "flat" }
layer { name: "power" type: "Power" bottom: "flat" top: "power" power_param { scale: 2 shift: 1 } }
layer { name: "ip" type: "InnerProduct" bottom: "power" top: "ip"
        inner_product_param { num_output: 5 } }
layer { name: "ip_t" type: "InnerProduct" bottom: "power" top: "ip_t"
        inner_product_param { num_output: 3 transpose: true bias_term: false } }
layer { name: "sm" type: "Softmax" bottom: "ip" top: "sm" }
layer { name: "sm_inplace" type: "Softmax" bottom: "ip_t" top: "ip_t" }
"""


def small_net(rng, body=BODY, dtype=np.float32, shape=(2, 3, 7, 6), phase=caffe.TEST, extra=""):
    dims = " ".join(f"dim: {d}" for d in shape)
    text = (f'{extra}layer {{ name: "in" type: "Input" top: "x" '
            f'input_param {{ shape {{ {dims} }} }} }}\n' + body)
    net = Net(parse_net(text), phase, dtype=dtype)
    sparsify(net, rng)
    net.blobs["x"].data[...] = rng.standard_normal(shape)
    return net


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_and_python_layers(rng, dtype):
    net = small_net(rng, dtype=dtype)
    planned, plain, _, _ = both_ways(net)
    tol = {"rtol": 1e-6, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-13, "atol": 1e-14}
    assert_same(planned, plain, **tol)
    prog = net._planner.plan.program
    python_steps = [i for i in range(len(prog)) if prog.is_python(i)]
    assert len(python_steps) == 1                  # Power runs from Python, the rest compiled


def test_partial_ranges():
    """forward(start=, end=) on a planned and a plain twin, from the same (scrambled) state."""
    planned_net = small_net(np.random.default_rng(7))
    plain_net = small_net(np.random.default_rng(7))
    plain_net.use_plan = False
    names = [layer.name for layer in planned_net.layers]
    for start, end in [(None, "conv"), ("relu_copy", "pool"), ("pool", "ip"), ("flat", None),
                       ("sm", "sm"), ("in", "in"), (None, None)]:
        scramble = np.random.default_rng(len(names))
        for name in planned_net.blobs:
            values = scramble.standard_normal(planned_net.blobs[name].shape)
            planned_net.blobs[name].data[...] = values
            plain_net.blobs[name].data[...] = values
        out = planned_net.forward(start=start, end=end)
        plain_out = plain_net.forward(start=start, end=end)
        assert out.keys() == plain_out.keys()
        if end is not None:
            assert set(out) == set(planned_net._top_names[names.index(end)])
        for k in planned_net.blobs:
            np.testing.assert_allclose(planned_net.blobs[k].data, plain_net.blobs[k].data,
                                       rtol=1e-6, atol=1e-7,
                                       err_msg=f"start={start} end={end} blob '{k}'")
    assert planned_net._planner.plan is not None


def test_weights_changed_in_place(rng):
    for mode in CONV_MODES:
        net = deploy_net(os.path.join(ROOT, "prototxt", "lenet", "lenet_deploy.prototxt"),
                         conv_mode=mode)
        sparsify(net, rng)
        randomize_inputs(net, rng)
        net.forward()
        sparsify(net, rng)                          # new values, same arrays
        planned, plain, _, _ = both_ways(net)
        assert_same(planned, plain)


def test_guard_rebuilds_compact_formats_and_negative_zero_does_not_loop(rng):
    net = deploy_net(os.path.join(ROOT, "prototxt", "lenet", "lenet_deploy.prototxt"),
                     conv_mode="LOWERED_CCNMM")
    sparsify(net, rng)
    randomize_inputs(net, rng)
    net.forward()
    w = net.params["conv2"][0].data
    w[w == 0] = -0.0                                # equal to the format's weights, other bits
    planned, plain, _, _ = both_ways(net)
    assert_same(planned, plain)
    w.reshape(w.shape[0], -1)[3] = 0                # one more filter removed
    planned, plain, _, _ = both_ways(net)
    assert_same(planned, plain)
    assert (planned["conv2"][:, 3] == net.params["conv2"][1].data[3]).all()


def test_copy_from_and_share_with(rng, tmp_path):
    path = os.path.join(ROOT, "prototxt", "lenet", "lenet_deploy.prototxt")
    for mode in CONV_MODES:
        net = deploy_net(path, conv_mode=mode)
        sparsify(net, rng)
        randomize_inputs(net, rng)
        net.forward()
        other = deploy_net(path, conv_mode=mode)
        sparsify(other, rng)
        other.save(str(tmp_path / "w.caffemodel"))
        net.copy_from(str(tmp_path / "w.caffemodel"))
        planned, plain, _, _ = both_ways(net)
        assert_same(planned, plain)
        third = deploy_net(path, conv_mode=mode)
        sparsify(third, rng)
        net.share_with(third)
        planned, plain, _, _ = both_ways(net)
        assert_same(planned, plain)
        third.params["ip1"][0].data[...] *= 2       # shared storage: seen by the plan
        planned_again, _, _, _ = both_ways(net)
        assert not np.allclose(planned_again["ip1"], planned["ip1"])


LOSSES = """
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 4 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "relu" loss_weight: 0.5 }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
"""


def test_losses_at_test(rng):
    text = ('layer { name: "in" type: "Input" top: "x" top: "label" '
            'input_param { shape { dim: 5 dim: 6 } shape { dim: 5 } } }\n' + LOSSES)
    net = Net(parse_net(text), caffe.TEST)
    sparsify(net, rng)
    net.blobs["x"].data[...] = rng.standard_normal((5, 6))
    net.blobs["label"].data[...] = rng.integers(0, 4, 5)
    planned, plain, out, plain_out = both_ways(net)
    assert_same(planned, plain)
    assert_same(out, plain_out)
    loss_planned = net.forward_all_loss()
    net.use_plan = False
    assert net.forward_all_loss() == pytest.approx(loss_planned, rel=1e-6)
    np.testing.assert_array_equal(net.blobs["relu"].diff, 0.5)


def test_backward_after_planned_forward(rng):
    net = small_net(rng, extra="force_backward: true\n", body=BODY.replace(
        'layer { name: "drop_copy"', 'layer { name: "mp" type: "Pooling" bottom: "r" top: "mp" '
        'pooling_param { pool: MAX kernel_size: 2 stride: 1 } }\nlayer { name: "drop_copy"'))
    grads = []
    for use in (True, False):
        net.use_plan = use
        net.forward()
        for name in net.outputs:
            net.blobs[name].diff[...] = 1.0
        for layer in net.layers:
            for b in layer.blobs:
                b.diff[...] = 0
        net.backward()
        grads.append([np.array(b.diff) for layer in net.layers for b in layer.blobs]
                     + [np.array(net.blobs["x"].diff)])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_max_pooling_backward_after_a_plan_uses_the_planned_input(rng):
    """A planned MAX pooling keeps no argmax; backward recomputes it. Here the last plain
    forward saw other data (its mask is stale) and the planned one new data: the gradient must
    be the one of the planned forward's input, as with the plain path throughout."""
    body = BODY.replace('layer { name: "drop_copy"', 'layer { name: "mp" type: "Pooling" '
                        'bottom: "r" top: "mp" pooling_param { pool: MAX kernel_size: 3 '
                        'stride: 2 } }\nlayer { name: "drop_copy"')
    net = small_net(rng, extra="force_backward: true\n", body=body)
    first = rng.random(net.blobs["x"].shape)
    second = rng.random(net.blobs["x"].shape)

    def gradient(planned_second):
        net.use_plan = False
        net.forward(x=first)                 # plain: leaves the mask of `first`
        net.use_plan = planned_second
        net.forward(x=second)
        for name in net.outputs:
            net.blobs[name].diff[...] = 1.0
        net.backward()
        return np.array(net.blobs["x"].diff)

    want = gradient(False)
    got = gradient(True)
    assert np.abs(want).sum() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_layer_that_moves_a_blob_falls_back(rng):
    net = small_net(rng)
    power = net.layer_dict["power"]
    reshape = power.reshape

    grown = [net.blobs["power"].count]

    def moving_reshape(bottom, top):                # new storage on every call
        grown[0] += 100
        top[0].reshape((grown[0],))
        reshape(bottom, top)
    power.reshape = moving_reshape
    for _ in range(3):
        planned, plain, _, _ = both_ways(net)
        assert_same(planned, plain)
        assert net._planner.plan is None            # dropped: the next forward rebuilds it


def test_unplannable_shapes_fall_back_to_the_plain_path(rng):
    net = deploy_net(os.path.join(ROOT, "prototxt", "lenet", "lenet_deploy.prototxt"))
    sparsify(net, rng)
    net.blobs["data"].reshape(1, 1, 32, 32)         # conv1 accepts it; ip1 does not
    randomize_inputs(net, rng)
    out = net.forward(end="pool1")
    assert out["pool1"].shape == (1, 20, 14, 14)
    with pytest.raises(LayerSetupError, match="ip1"):
        net.forward()


def test_kernel_errors_name_the_layer(rng):
    net = small_net(rng)
    net.forward()
    prog = net._planner.plan.program
    compiled = prog._native

    class Failing:                                  # the compiled program, failing at step 0
        def run(self, first, last):
            raise KernelError("f32_conv_forward_nchw: simulated")

        def failed_step(self):
            return 0
    prog._native = Failing()
    try:
        with pytest.raises(LayerSetupError, match="layer 'conv'.*forward failed: f32_conv"):
            net.forward()
    finally:
        prog._native = compiled


def test_knobs(rng, monkeypatch):
    net = small_net(rng)
    assert net.use_plan
    net.use_plan = False
    assert not net.use_plan and net._planner is None
    net.use_plan = True
    assert net.use_plan
    train = small_net(rng, phase=caffe.TRAIN)
    assert not train.use_plan
    with pytest.raises(ValueError, match="TRAIN net"):
        train.use_plan = True
    monkeypatch.setenv("MINICAFFE_PLAN", "0")
    assert not small_net(rng).use_plan
    assert plan_module.plan_refusal(small_net(rng)) is None     # on request it still can


def test_callbacks_take_the_plain_path(rng):
    net = small_net(rng)
    seen = []
    net.before_forward(seen.append)
    net.forward()
    assert seen == list(range(len(net.layers)))
