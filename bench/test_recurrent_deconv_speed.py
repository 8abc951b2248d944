"""Deconvolution and LSTM / RNN layer speed: minicaffe vs PyTorch CPU on the same shapes.

One forward + backward of a single layer (float32), minicaffe timed with pytest-benchmark and
PyTorch (same weights, same thread count) timed in the same process before and after, with
`ratio = minicaffe / torch` (lower is better) in `benchmark.extra_info`. Results are compared
with PyTorch's before timing.

    pytest bench/test_recurrent_deconv_speed.py --benchmark-min-rounds=5
"""
import statistics
import time

import numpy as np
import pytest

from minicaffe import ops
from minicaffe.blob import Blob
from minicaffe.catalog import create_layer
from minicaffe.prototxt import parse_net

# minicaffe's kernels (and their libgomp) load before PyTorch's (docs/KERNELS.md, "Threads").
ops.build_info()

DECONV = {   # name: (bottom shape, num_output, kernel, stride, pad, group)
    "fcn_upscore2_21c_32px": ((1, 21, 32, 32), 21, 4, 2, 0, 1),
    "fcn_upscore8_21c_64px": ((1, 21, 64, 64), 21, 16, 8, 0, 1),
    "dcgan_b64_128to64_8px": ((64, 128, 8, 8), 64, 4, 2, 1, 1),
}
RECURRENT = {  # name: (type, T, N, I, H)
    "lstm_T20_N16_256": ("LSTM", 20, 16, 256, 256),
    "lstm_T16_N8_64": ("LSTM", 16, 8, 64, 64),
    "rnn_T20_N16_256": ("RNN", 20, 16, 256, 256),
}


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")


def _median_time(fn, rounds):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _layer(text, bottom_shapes, n_tops=1, seed=0):
    lp = parse_net("layer { " + text + " }").layer[0]
    rng = np.random.default_rng(seed)
    bottom = []
    for shape in bottom_shapes:
        b = Blob(shape, dtype=np.float32)
        b.data[...] = rng.standard_normal(shape)
        bottom.append(b)
    top = [Blob((), dtype=np.float32) for _ in range(n_tops)]
    layer = create_layer(lp, "TRAIN")
    layer.check_counts(bottom, top)
    np.random.seed(seed)
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    return layer, bottom, top


def _run(benchmark, torch, ours, theirs, threads, info):
    for _ in range(2):
        ours()
        theirs()
    torch_s = _median_time(theirs, 5)
    benchmark(ours)
    torch_s = min(torch_s, _median_time(theirs, 5))
    if benchmark.stats is None:                  # --benchmark-disable: checked, not timed
        return
    benchmark.extra_info.update(dict(info, threads=threads, torch_median_s=torch_s,
                                     ratio=benchmark.stats.stats.median / torch_s,
                                     build=ops.build_info()))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("key", list(DECONV))
def test_deconvolution_speed(benchmark, torch, key, threads):
    ops.set_num_threads(threads)
    torch.set_num_threads(threads)
    shape, M, k, s, p, g = DECONV[key]
    layer, bottom, top = _layer(
        f'name: "d" type: "Deconvolution" bottom: "x" top: "y" convolution_param {{ '
        f'num_output: {M} kernel_size: {k} stride: {s} pad: {p} group: {g} '
        f'weight_filler {{ type: "gaussian" std: 0.1 }} }}', [shape])
    dy = np.random.default_rng(1).standard_normal(top[0].shape).astype(np.float32)
    tx = torch.tensor(bottom[0].data, requires_grad=True)
    tw = torch.tensor(layer.blobs[0].data, requires_grad=True)
    tb = torch.tensor(layer.blobs[1].data, requires_grad=True)
    tdy = torch.tensor(dy)

    def ours():
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        layer.blobs[0].diff[...] = 0
        layer.blobs[1].diff[...] = 0
        layer.backward(top, [True], bottom)

    def theirs():
        tx.grad = tw.grad = tb.grad = None
        ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, stride=s, padding=p, groups=g)
        ty.backward(tdy)
        return ty

    ours()
    ty = theirs()
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(layer.blobs[0].diff, tw.grad.numpy(), rtol=1e-3, atol=2e-3)
    _run(benchmark, torch, ours, theirs, threads, {"layer": "Deconvolution", "shape": key})


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("key", list(RECURRENT))
def test_recurrent_speed(benchmark, torch, key, threads):
    ops.set_num_threads(threads)
    torch.set_num_threads(threads)
    kind, T, N, I, H = RECURRENT[key]
    layer, bottom, top = _layer(
        f'name: "r" type: "{kind}" bottom: "x" bottom: "cont" top: "h" recurrent_param {{ '
        f'num_output: {H} weight_filler {{ type: "uniform" min: -0.08 max: 0.08 }} }}',
        [(T, N, I), (T, N)])
    bottom[1].data[...] = 1.0
    bottom[1].data[0] = 0.0
    dy = np.random.default_rng(1).standard_normal(top[0].shape).astype(np.float32)
    tdy = torch.tensor(dy)
    tx = torch.tensor(bottom[0].data, requires_grad=True)
    w = [torch.tensor(b.data) for b in layer.blobs]
    if kind == "LSTM":
        perm = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]      # Caffe i, f, o, g -> torch i, f, g, o
        mod = torch.nn.LSTM(I, H)
        with torch.no_grad():
            mod.weight_ih_l0.copy_(w[0][perm])
            mod.bias_ih_l0.copy_(w[1][perm])
            mod.weight_hh_l0.copy_(w[2][perm])
            mod.bias_hh_l0.zero_()

        def forward_torch():
            return mod(tx)[0]
    else:
        mod = torch.nn.RNN(I, H)
        out = torch.nn.Linear(H, H)
        with torch.no_grad():
            mod.weight_ih_l0.copy_(w[0])
            mod.bias_ih_l0.copy_(w[1])
            mod.weight_hh_l0.copy_(w[2])
            mod.bias_hh_l0.zero_()
            out.weight.copy_(w[3])
            out.bias.copy_(w[4])

        def forward_torch():
            return torch.tanh(out(mod(tx)[0]))

    def ours():
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        top[0].diff[...] = dy
        for b in layer.blobs:
            b.diff[...] = 0
        layer.backward(top, [True, False], bottom)

    def theirs():
        tx.grad = None
        mod.zero_grad()
        ty = forward_torch()
        ty.backward(tdy)
        return ty

    ours()
    ty = theirs()
    np.testing.assert_allclose(top[0].data, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bottom[0].diff, tx.grad.numpy(), rtol=1e-3, atol=1e-4)
    _run(benchmark, torch, ours, theirs, threads, {"layer": kind, "shape": key})
