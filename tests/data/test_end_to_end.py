"""End to end: a LeNet-like Net reads an LMDB written by the data tool, and the shipped LeNet
prototxt reads the raw Fashion-MNIST IDX files fetched with `get` (offline, Debian copy)."""
import pathlib

import numpy as np
import pytest

from minicaffe.data.__main__ import main

NET = """
name: "tiny"
layer {{ name: "data" type: "Data" top: "data" top: "label"
  transform_param {{ scale: 0.00390625 }}
  data_param {{ source: "{source}" batch_size: 4 backend: LMDB }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param {{ num_output: 3 kernel_size: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  inner_product_param {{ num_output: 10 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }}
"""

LENET = pathlib.Path(__file__).resolve().parents[2] / "prototxt" / "lenet" / "lenet_train_test.prototxt"


def test_tiny_net_reads_lmdb_written_by_the_tool(tmp_path, helpers):
    from minicaffe import net as net_mod
    path, images, labels = helpers.write_idx_pair(tmp_path, n=6, h=8, w=8)
    assert main(["convert", str(path), str(tmp_path / "db")]) == 0
    (tmp_path / "net.prototxt").write_text(NET.format(source=tmp_path / "db"))
    net = net_mod.Net(str(tmp_path / "net.prototxt"), 0)
    out = net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, images[:4, None] * np.float32(0.00390625))
    np.testing.assert_array_equal(net.blobs["label"].data, labels[:4])
    assert np.isfinite(out["loss"]) and out["loss"] > 0
    net.forward()                             # records 4, 5, then wrap to 0, 1
    np.testing.assert_array_equal(net.blobs["label"].data, labels[[4, 5, 0, 1]])
    loss = net.forward_backward()
    assert np.isfinite(loss)


@pytest.mark.slow
def test_shipped_lenet_reads_fashion_mnist_idx(tmp_path, monkeypatch, fashion_mnist):
    from minicaffe.data import download
    from minicaffe.net import Net

    monkeypatch.setattr(download.DATASETS["fashion-mnist"], "local_dirs", [str(fashion_mnist)])
    monkeypatch.chdir(tmp_path)
    assert main(["get", "fashion-mnist"]) == 0            # copies the local files, verified
    net = Net(str(LENET), 1)                              # TEST: t10k, batch 100
    out = net.forward()
    assert net.blobs["data"].data.shape == (100, 1, 28, 28)
    assert 0 <= net.blobs["data"].data.min() and net.blobs["data"].data.max() < 1
    assert np.all((net.blobs["label"].data >= 0) & (net.blobs["label"].data <= 9))
    assert all(np.isfinite(v).all() for v in out.values())


SOLVER = """
net: "{net}"
base_lr: 0.1
momentum: 0.9
lr_policy: "fixed"
max_iter: 40
display: 0
random_seed: 3
snapshot_prefix: "{prefix}"
"""

LINEAR_NET = """
name: "linear"
layer {{ name: "data" type: "Data" top: "data" top: "label"
  transform_param {{ scale: 0.00390625 }}
  data_param {{ source: "{source}" batch_size: 16 backend: LMDB }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 2 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
"""


def test_sgd_learns_from_a_tool_written_lmdb(tmp_path, helpers):
    """Class 1 images are bright on the left half, class 0 on the right: a linear classifier
    trained from the LMDB must drive the loss well below log(2)."""
    from minicaffe import solver as solver_mod
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=64).astype(np.uint8)
    images = rng.integers(0, 60, size=(64, 6, 6)).astype(np.uint8)
    images[labels == 1, :, :3] += 150
    images[labels == 0, :, 3:] += 150
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(helpers.idx_bytes(images))
    (folder / "train-labels-idx1-ubyte").write_bytes(helpers.idx_bytes(labels))
    assert main(["convert", str(folder / "train-images-idx3-ubyte"), str(tmp_path / "db")]) == 0
    (tmp_path / "net.prototxt").write_text(LINEAR_NET.format(source=tmp_path / "db"))
    (tmp_path / "solver.prototxt").write_text(
        SOLVER.format(net=tmp_path / "net.prototxt", prefix=tmp_path / "snap"))
    solver = solver_mod.get_solver(str(tmp_path / "solver.prototxt"))
    first = solver.net.forward_backward()
    solver.step(40)
    last = float(solver.net.forward()["loss"])
    assert first > 0.4 and last < 0.1, (first, last)
