"""Small nets and weight planting shared by the compaction tests (not a test module)."""
import numpy as np
from hypothesis import strategies as st

import minicaffe as caffe
from minicaffe.compact import build_net, compact_net
from minicaffe.net import Net
from minicaffe.prototxt import parse_net


def _input(shape):
    dims = " ".join(f"dim: {d}" for d in shape)
    return (f'layer {{ name: "data" type: "Input" top: "data" '
            f'input_param {{ shape {{ {dims} }} }} }}\n')


def conv(name, bottom, n, k, pad=0, stride=1, group=1, top=None, bias=True):
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{top or name}" '
            f'convolution_param {{ num_output: {n} kernel_size: {k} pad: {pad} stride: {stride} '
            f'group: {group} bias_term: {"true" if bias else "false"} }} }}\n')


def ip(name, bottom, n, top=None, transpose=False):
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top or name}" '
            f'inner_product_param {{ num_output: {n} transpose: {"true" if transpose else "false"} }} }}\n')


def act(name, kind, blob, top=None, extra=""):
    return f'layer {{ name: "{name}" type: "{kind}" bottom: "{blob}" top: "{top or blob}" {extra} }}\n'


def bn_scale(prefix, blob):
    return (act(f"{prefix}_bn", "BatchNorm", blob) +
            act(f"{prefix}_sc", "Scale", blob, extra="scale_param { bias_term: true }"))


def lenet(pad=0, pool_pad=0):
    return ('name: "lenet"\n' + _input((3, 1, 12, 12)) + conv("conv1", "data", 6, 3)
            + act("relu1", "ReLU", "conv1")
            + act("pool1", "Pooling", "conv1", "pool1",
                  "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
            + conv("conv2", "pool1", 8, 3, pad=pad)
            + act("pool2", "Pooling", "conv2", "pool2",
                  f"pooling_param {{ pool: AVE kernel_size: 2 stride: 2 pad: {pool_pad} }}")
            + ip("ip1", "pool2", 10) + act("relu2", "ReLU", "ip1") + ip("ip2", "ip1", 4))


def mlp():
    return ('name: "mlp"\n' + _input((3, 1, 5, 5)) + ip("ip1", "data", 12)
            + act("relu1", "ReLU", "ip1") + act("drop1", "Dropout", "ip1")
            + ip("ip2", "ip1", 9, transpose=True) + act("sig2", "Sigmoid", "ip2")
            + ip("ip3", "ip2", 4))


def resnet():
    return ('name: "resnet"\n' + _input((2, 3, 8, 8))
            + conv("conv0", "data", 4, 3, pad=1) + bn_scale("conv0", "conv0")
            + act("relu0", "ReLU", "conv0")
            # identity shortcut
            + conv("a1", "conv0", 4, 3, pad=1, bias=False) + bn_scale("a1", "a1")
            + act("a1_relu", "ReLU", "a1")
            + conv("b1", "a1", 4, 3, pad=1, bias=False) + bn_scale("b1", "b1")
            + 'layer { name: "sum1" type: "Eltwise" bottom: "conv0" bottom: "b1" top: "sum1" }\n'
            + act("relu1", "ReLU", "sum1")
            # projection shortcut
            + conv("a2", "sum1", 6, 3, pad=1, stride=2, bias=False) + bn_scale("a2", "a2")
            + act("a2_relu", "ReLU", "a2")
            + conv("b2", "a2", 6, 3, pad=1, bias=False) + bn_scale("b2", "b2")
            + conv("p2", "sum1", 6, 1, stride=2, bias=False) + bn_scale("p2", "p2")
            + 'layer { name: "sum2" type: "Eltwise" bottom: "b2" bottom: "p2" top: "sum2" '
              'eltwise_param { coeff: 1 coeff: 0.5 } }\n'
            + act("relu2", "ReLU", "sum2")
            + act("pool", "Pooling", "sum2", "pool", "pooling_param { pool: AVE global_pooling: true }")
            + ip("fc", "pool", 3))


def concat_net():
    return ('name: "concat"\n' + _input((2, 2, 9, 9)) + conv("conv1", "data", 6, 3)
            + act("relu1", "ReLU", "conv1")
            + conv("b1", "conv1", 4, 1) + act("b1_relu", "ReLU", "b1")
            + conv("b2", "conv1", 5, 3, pad=1)
            + act("b3", "Pooling", "conv1", "b3",
                  "pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 }")
            + 'layer { name: "cat" type: "Concat" bottom: "b1" bottom: "b2" bottom: "b3" top: "cat" }\n'
            + conv("conv3", "cat", 7, 3)
            + 'layer { name: "slice" type: "Slice" bottom: "conv3" top: "s1" top: "s2" '
              'slice_param { slice_point: 3 } }\n'
            + ip("ipa", "s1", 2) + ip("ipb", "s2", 3)
            + 'layer { name: "cat2" type: "Concat" bottom: "ipa" bottom: "ipb" top: "cat2" }\n'
            + ip("out", "cat2", 3))


def grouped():
    return ('name: "grouped"\n' + _input((2, 4, 8, 8)) + conv("conv1", "data", 8, 3, group=2)
            + act("relu1", "ReLU", "conv1") + conv("conv2", "conv1", 8, 3, pad=1, group=4)
            + act("relu2", "ReLU", "conv2") + conv("conv3", "conv2", 6, 1, group=2)
            + ip("fc", "conv3", 3))


def lrn_net():
    return ('name: "lrn"\n' + _input((2, 2, 9, 9)) + conv("conv1", "data", 10, 3)
            + act("relu1", "ReLU", "conv1")
            + act("norm1", "LRN", "conv1", "norm1",
                  "lrn_param { local_size: 3 alpha: 2 beta: 0.75 }")
            + act("pool1", "Pooling", "norm1", "pool1",
                  "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
            + conv("conv2", "pool1", 9, 2) + act("relu2", "ReLU", "conv2")
            + act("norm2", "LRN", "conv2", "norm2",
                  "lrn_param { local_size: 5 alpha: 3 beta: 0.75 k: 2 }")
            + act("norm3", "LRN", "norm2", "norm3",
                  "lrn_param { local_size: 3 alpha: 1 beta: 0.5 norm_region: WITHIN_CHANNEL }")
            + ip("fc", "norm3", 3))


def misc_net():
    return ('name: "misc"\n' + _input((2, 3, 6, 6)) + conv("conv1", "data", 5, 3)
            + act("abs1", "AbsVal", "conv1", "abs1")
            + act("bias1", "Bias", "abs1", extra="bias_param { filler { type: \"gaussian\" } }")
            + act("tanh1", "TanH", "abs1", "tanh1")
            + act("power1", "Power", "tanh1", "power1", "power_param { power: 2 shift: 0.5 }")
            + 'layer { name: "split" type: "Split" bottom: "power1" top: "sa" top: "sb" }\n'
            + act("flat", "Flatten", "sa", "flat") + ip("ip1", "flat", 6)
            + act("reshape", "Reshape", "sb", "r3", "reshape_param { shape { dim: 0 dim: 0 dim: -1 } }")
            + act("sig3", "Sigmoid", "r3", "r4")
            + ip("ip2", "r4", 4)
            + 'layer { name: "cat" type: "Concat" bottom: "ip1" bottom: "ip2" top: "cat" }\n'
            + ip("ip3", "cat", 3))


NETS = {"lenet": lenet, "mlp": mlp, "resnet": resnet, "concat": concat_net,
        "grouped": grouped, "lrn": lrn_net, "misc": misc_net}


def make(text, dtype=np.float32, seed=0):
    """A TEST net of `text` with random weights of unit-ish activations (BatchNorm with random
    statistics and a scale factor that is not 1)."""
    net = Net(parse_net(text), caffe.TEST, dtype=dtype)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.type == "BatchNorm":
            c = layer.blobs[0].shape[0]
            layer.blobs[2].data[...] = 2.0
            layer.blobs[0].data[...] = 2.0 * rng.normal(0, 0.5, c)
            layer.blobs[1].data[...] = 2.0 * rng.uniform(0.5, 2.0, c)
            continue
        for j, blob in enumerate(layer.blobs):
            fan_in = blob.count // blob.shape[0] if j == 0 and blob.ndim > 1 else 1
            blob.data[...] = rng.normal(0, 1.0 / np.sqrt(max(fan_in, 1)), blob.shape)
    return net


def lowered(layer):
    """(M, K) view of a Convolution / InnerProduct weight blob (rows = filters / neurons)."""
    w = layer.blobs[0].data
    if layer.type == "InnerProduct" and layer.transpose:
        return w.T
    return w.reshape(w.shape[0], -1)


@st.composite
def zero_pattern(draw, net):
    """Per Convolution / InnerProduct: zero rows, zero columns, zero input channels, zeroed
    biases and, sometimes, the whole layer; returned as a dict for `plant`."""
    pattern = {}
    for layer in net.layers:
        if layer.type not in ("Convolution", "InnerProduct"):
            continue
        m, k = lowered(layer).shape
        sub = lambda n: st.lists(st.integers(0, n - 1), max_size=n).map(sorted)  # noqa: E731
        entry = {"rows": draw(sub(m)), "cols": draw(sub(k)),
                 "bias_zero": draw(sub(m)), "all": draw(st.integers(0, 5)) == 0}
        if layer.type == "Convolution":
            entry["channels"] = draw(sub(layer.blobs[0].shape[1]))
        pattern[layer.name] = entry
    return pattern


def plant(net, pattern):
    layers = net.layer_dict
    for name, entry in pattern.items():
        layer = layers[name]
        w = lowered(layer)
        w[entry["rows"]] = 0
        w[:, entry["cols"]] = 0
        if "channels" in entry:
            layer.blobs[0].data[:, entry["channels"]] = 0
        if entry["all"]:
            w[...] = 0
        if len(layer.blobs) > 1:
            layer.blobs[1].data[entry["bias_zero"]] = 0
        layer.refresh_weights() if layer.type == "Convolution" else None
    return net


def random_inputs(net, seed=1):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 1, net.blobs[name].shape).astype(net.dtype) for name in net.inputs}


def outputs(net, feed):
    return {k: np.array(v) for k, v in net.forward(**feed).items()}


def assert_same_outputs(net, small, feed=None):
    feed = feed or random_inputs(net)
    ref, got = outputs(net, feed), outputs(small, feed)
    assert set(ref) == set(got)
    tol = 1e-5 if net.dtype == np.float32 else 1e-11
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=tol, atol=tol, err_msg=f"output {k}")


def compact_and_build(net):
    result = compact_net(net)
    return result, build_net(*result, dtype=net.dtype)
