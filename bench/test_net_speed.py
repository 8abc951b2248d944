"""Whole-net speed: minicaffe vs PyTorch CPU on the same nets, and a memory-growth check.

Nets are Caffe's LeNet (batch 64) and the CIFAR-10 "quick" net (batch 100), both with Input
layers, so no data files are needed. Each test times minicaffe with pytest-benchmark and times
PyTorch (same weights, same shapes, same thread count) in the same process, interleaved, and
records `ratio = minicaffe / torch` (lower is better) in `benchmark.extra_info`.
The issue's targets: training iteration ≤ 1.5×, inference forward ≤ 1.3×.

    pytest bench/test_net_speed.py --benchmark-min-rounds=5
    python bench/test_net_speed.py --rss 1000        # resident memory over 1000 iterations
"""
import argparse
import statistics
import sys
import time

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe import ops
from minicaffe.net import Net
from minicaffe.prototxt import parse_net

LR = 0.01

# Load minicaffe's kernels (and so its libgomp with its wait policy) before PyTorch, whose libgomp
# has the same soname: whichever loads first serves both (docs/KERNELS.md, "Threads").
ops.build_info()

LENET = """
name: "LeNet"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 64 dim: 1 dim: 28 dim: 28 } shape { dim: 64 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        inner_product_param { num_output: 500 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

CIFAR_QUICK = """
name: "CIFAR10_quick"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 100 dim: 3 dim: 32 dim: 32 } shape { dim: 100 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 32 pad: 2 kernel_size: 5 weight_filler { type: "gaussian" std: 0.0001 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 32 pad: 2 kernel_size: 5 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
        convolution_param { num_output: 64 pad: 2 kernel_size: 5 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool3" top: "ip1"
        inner_product_param { num_output: 64 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

NETS = {"lenet_b64": LENET, "cifar10_quick_b100": CIFAR_QUICK}


def build_net(key, seed=0):
    """The minicaffe TRAIN net with random inputs and labels in its Input blobs."""
    np.random.seed(seed)
    net = Net(parse_net(NETS[key]), caffe.TRAIN)
    rng = np.random.default_rng(seed)
    data = net.blobs["data"]
    data.data[...] = rng.random(data.shape, dtype=np.float32)
    net.blobs["label"].data[...] = rng.integers(0, 10, net.blobs["label"].shape)
    return net


def train_iteration(net):
    """Clear diffs, forward + backward, plain SGD update w -= lr * diff; returns the loss."""
    net.clear_param_diffs()
    loss = net.forward_backward()
    for blob in net.learnable_params:
        blob.data -= LR * blob.diff
    return loss


def torch_twin(torch, net):
    """The same net in PyTorch (Caffe's ceil-mode pooling; AVE pooling counts padding, here
    there is none), with minicaffe's weights copied in."""
    nn = torch.nn
    mods = []
    for layer in net.layers:
        t, lp = layer.type, layer.layer_param
        if t == "Convolution":
            c = lp.convolution_param
            w = layer.blobs[0].data
            pad = int(c.pad[0]) if len(c.pad) else 0
            m = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=pad)
            m.weight.data = torch.from_numpy(np.array(w))
            m.bias.data = torch.from_numpy(np.array(layer.blobs[1].data))
        elif t == "Pooling":
            p = lp.pooling_param
            cls = nn.MaxPool2d if p.pool == "MAX" else nn.AvgPool2d
            m = cls(int(p.kernel_size), int(p.stride), ceil_mode=True)
        elif t == "ReLU":
            m = nn.ReLU()
        elif t == "InnerProduct":
            w = layer.blobs[0].data
            m = nn.Sequential(nn.Flatten(), nn.Linear(w.shape[1], w.shape[0]))
            m[1].weight.data = torch.from_numpy(np.array(w))
            m[1].bias.data = torch.from_numpy(np.array(layer.blobs[1].data))
        else:
            continue
        mods.append(m)
    return nn.Sequential(*mods)


def torch_train_iteration(torch, model, x, y):
    for p in model.parameters():
        p.grad = None
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= LR * p.grad
    return float(loss)


@pytest.fixture
def torch():
    """PyTorch, or skip: it is the reference these ratios are measured against."""
    return pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")


def _median_time(fn, rounds):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", ["train", "forward"])
@pytest.mark.parametrize("key", list(NETS))
def test_net_speed(benchmark, torch, key, mode, threads):
    ops.set_num_threads(threads)
    torch.set_num_threads(threads)
    net = build_net(key)
    model = torch_twin(torch, net)
    x = torch.from_numpy(np.array(net.blobs["data"].data))
    y = torch.from_numpy(np.array(net.blobs["label"].data)).long()

    # check the answers before timing: same scores, same loss
    net.forward()
    with torch.no_grad():
        scores = model(x).numpy()
    np.testing.assert_allclose(net.blobs["ip2"].data, scores, rtol=2e-3, atol=2e-4)

    if mode == "train":
        def ours():
            return train_iteration(net)

        def theirs():
            return torch_train_iteration(torch, model, x, y)
    else:
        def ours():
            return net.forward()

        def theirs():
            with torch.no_grad():
                return model(x)

    if benchmark.disabled:                 # --benchmark-disable: run once, check, time nothing
        result = benchmark(ours)
        assert mode != "train" or np.isfinite(result)
        return
    for _ in range(2):                     # warm-up: buffers, BLAS pools
        ours()
        theirs()
    torch_s = _median_time(theirs, 5)
    result = benchmark(ours)
    torch_s = min(torch_s, _median_time(theirs, 5))     # interleaved: before and after
    if mode == "train":
        assert np.isfinite(result)
    ours_s = benchmark.stats.stats.median
    benchmark.extra_info.update({
        "net": key, "mode": mode, "threads": threads, "torch_median_s": torch_s,
        "ratio": ours_s / torch_s, "target_ratio": 1.5 if mode == "train" else 1.3,
        "build": ops.build_info(),
    })


def rss_bytes():
    """Resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * __import__("os").sysconf("SC_PAGE_SIZE")


def rss_over_iterations(key="lenet_b64", iterations=1000, warmup=10, every=100):
    """[(iteration, RSS MiB)] over `iterations` training iterations after `warmup`."""
    net = build_net(key)
    for _ in range(warmup):
        train_iteration(net)
    trace = [(0, rss_bytes() / 2**20)]
    for it in range(1, iterations + 1):
        train_iteration(net)
        if it % every == 0 or it == iterations:
            trace.append((it, rss_bytes() / 2**20))
    return trace


def test_rss_stays_flat(benchmark):
    """Resident memory after warm-up stays flat over training iterations (a report plus a
    generous bound; run the script with --rss 1000 for the issue's 1,000 iterations)."""
    ops.set_num_threads(1)
    trace = benchmark.pedantic(rss_over_iterations, kwargs={"iterations": 60, "every": 20},
                               rounds=1, iterations=1)
    growth = trace[-1][1] - trace[0][1]
    benchmark.extra_info.update({"rss_trace_mib": trace, "rss_growth_mib": growth})
    assert growth < 16, f"RSS grew {growth:.1f} MiB over {trace[-1][0]} iterations: {trace}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rss", type=int, default=1000, help="training iterations to watch")
    parser.add_argument("--net", choices=list(NETS), default="lenet_b64")
    args = parser.parse_args()
    trace = rss_over_iterations(args.net, args.rss)
    for it, mib in trace:
        print(f"iteration {it:6d}: RSS {mib:8.1f} MiB")
    print(f"growth after warm-up: {trace[-1][1] - trace[0][1]:+.1f} MiB")
    sys.exit(0)
