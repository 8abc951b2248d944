"""GradientReducer without MPI: which blobs are reduced, how they are bucketed, when each
bucket starts during backward (overlap), and that the averages land in the diffs. A fake
communicator of P identical replicas stands in for MPI: its sum is P times the buffer."""
import numpy as np
import pytest

from minicaffe.net import Net
from minicaffe.parallel.reducer import GradientReducer, _gradient_blobs
from minicaffe.prototxt import parse_net

NET = """
layer { name: "in" type: "Input" top: "x" top: "y"
        input_param { shape { dim: 4 dim: 3 dim: 6 dim: 6 } shape { dim: 4 } } }
layer { name: "conv1" type: "Convolution" bottom: "x" top: "c1"
        param { name: "shared_w" } param { lr_mult: 2 }
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "bn" type: "BatchNorm" bottom: "c1" top: "c1" }
layer { name: "frozen" type: "Convolution" bottom: "c1" top: "c2"
        param { lr_mult: 0 } param { lr_mult: 0 }
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "conv3" type: "Convolution" bottom: "c2" top: "c3"
        param { name: "shared_w" } param { lr_mult: 1 }
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "ip" type: "InnerProduct" bottom: "c3" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "y" top: "loss" }
"""


class FakeComm:
    """P replicas holding the same gradients: sums are P times the buffer."""

    def __init__(self, size):
        self.size = size
        self.started = []                  # (bucket bytes) in start order
        self.blocking = []

    class Request:
        pass

    def iallreduce(self, buffer):
        buffer *= self.size
        self.started.append(buffer.nbytes)
        return FakeComm.Request()

    def progress(self, requests):
        pass

    def wait(self, requests, what, timeout="default"):
        pass

    def allreduce_inplace(self, buffer, what, timeout="default"):
        buffer *= self.size
        self.blocking.append(buffer.nbytes)
        return buffer


def _net():
    np.random.seed(3)
    net = Net(parse_net(NET), "TRAIN")
    rng = np.random.default_rng(0)
    net.blobs["x"].data[...] = rng.standard_normal(net.blobs["x"].shape)
    net.blobs["y"].data[...] = rng.integers(0, 5, 4)
    return net


def _grads(net, comm=None, bucket_bytes=1 << 20, overlap=True, passes=1):
    reducer = GradientReducer(comm, net, bucket_bytes, overlap) if comm else None
    net.clear_param_diffs()
    if reducer:
        reducer.arm(passes)
    for _ in range(passes):
        net.forward_backward()
    if reducer:
        reducer.finish()
    return [np.array(b.diff) for b in net.learnable_params], reducer


def test_reduced_blobs_in_backward_order_with_their_ready_layers():
    net = _net()
    names = {id(b): f"{info.layer_name}/{info.index}" for info in net.param_infos if info.owner
             for b in [info.blob]}
    order = [(names[id(b)], layer) for b, layer in _gradient_blobs(net)]
    index = {n: i for i, n in enumerate(net._layer_names)}
    # the shared weight is complete only after conv1 (the lowest layer using it); the frozen
    # convolution and BatchNorm's statistics (lr_mult 0) are left out
    assert order == [("ip/0", index["ip"]), ("ip/1", index["ip"]),
                     ("conv3/1", index["conv3"]),
                     ("conv1/0", index["conv1"]), ("conv1/1", index["conv1"])]


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("bucket_bytes", [1, 200, 1 << 20])
def test_average_of_identical_replicas_is_the_gradient(overlap, bucket_bytes):
    want, _ = _grads(_net())
    comm = FakeComm(4)
    got, reducer = _grads(_net(), comm, bucket_bytes, overlap)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    sizes = reducer.buckets
    assert sum(sizes) == reducer.nbytes == sum(4 * b.count for b, _ in _gradient_blobs(_net()))
    if bucket_bytes == 1:
        assert len(sizes) == 5                 # one blob per bucket
    if bucket_bytes == 1 << 20:
        assert len(sizes) == 1
    assert (comm.started if overlap else comm.blocking) == sizes
    assert not (comm.blocking if overlap else comm.started)


def test_buckets_start_when_their_last_layer_is_done():
    net = _net()
    comm = FakeComm(2)
    reducer = GradientReducer(comm, net, 1, overlap=True)
    seen = []
    net.after_backward(lambda i: seen.append((net._layer_names[i], len(comm.started))))
    reducer.arm(1)
    net.forward_backward()
    started = dict(seen)
    # the reducer's own callback runs first: after ip's backward its two blobs are in flight,
    # conv3's bias after conv3's, the shared weight and conv1's bias only after conv1's
    assert started["ip"] == 2 and started["conv3"] == 3 and started["frozen"] == 3
    assert started["conv1"] == 5
    reducer.finish()


def test_iter_size_starts_buckets_in_the_last_pass_only():
    want, _ = _grads(_net(), passes=3)
    comm = FakeComm(2)
    got, reducer = _grads(_net(), comm, 1, True, passes=3)
    assert len(comm.started) == len(reducer.buckets)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_backward_outside_an_armed_iteration_starts_nothing():
    net = _net()
    comm = FakeComm(2)
    GradientReducer(comm, net, 1, overlap=True)
    net.forward_backward()
    assert comm.started == []
