"""experiments.datasets: finding MNIST-like and CIFAR-like data, the padded stand-in, retarget."""
import os

import numpy as np
import pytest

from minicaffe.data.cifar import read_cifar_batch
from minicaffe.data.idx import labels_path_for, read_idx
from minicaffe.errors import DataError
from minicaffe.experiments import datasets
from minicaffe.prototxt import read_net

from tests.experiments.tinydata import tiny_images


def test_write_idx_round_trips_through_the_reader(tmp_path):
    x, y = tiny_images(7, np.random.default_rng(1))
    path = datasets.write_idx(str(tmp_path), "train", x, y)
    np.testing.assert_array_equal(read_idx(path), x)
    np.testing.assert_array_equal(read_idx(labels_path_for(path)), y)


def test_mnist_is_preferred_when_present_else_fashion(tiny_data, tmp_path):
    ds = datasets.mnist_like(tiny_data)
    assert ds.name == "fashion-mnist" and ds.backend == "IDX"
    assert "256 training, 200 test images" in ds.description
    x, y = tiny_images(5, np.random.default_rng(2))
    for split in ("train", "t10k"):
        datasets.write_idx(f"{tiny_data}/mnist", split, x, y, gz=False)
    assert datasets.mnist_like(tiny_data).name == "mnist"
    assert datasets.mnist_like(tiny_data, "fashion-mnist").name == "fashion-mnist"
    with pytest.raises(DataError, match=r"no mnist or fashion-mnist IDX files in .*python -m "
                                        r"minicaffe.data get fashion-mnist"):
        datasets.mnist_like(str(tmp_path / "nothing"))
    with pytest.raises(DataError, match="unknown data set 'cifar'"):
        datasets.mnist_like(tiny_data, "cifar")


def test_fashion_stands_in_for_cifar_padded_to_32(tiny_data):
    ds = datasets.cifar_like(tiny_data)
    assert ds.is_stand_in and ds.backend == "CIFAR10" and "stand-in" in ds.description
    images, labels = read_cifar_batch(ds.test)
    src = read_idx(f"{tiny_data}/fashion-mnist/t10k-images-idx3-ubyte.gz")
    assert images.shape == (200, 3, 32, 32)
    np.testing.assert_array_equal(images[:, 1, 2:30, 2:30], src)
    assert not images[:, :, :2].any() and not images[:, :, :, 30:].any()
    np.testing.assert_array_equal(images[:, 0], images[:, 2])
    np.testing.assert_array_equal(labels, read_idx(f"{tiny_data}/fashion-mnist/"
                                                   "t10k-labels-idx1-ubyte.gz"))
    train = sum(len(read_cifar_batch(f"{ds.train}/data_batch_{k}.bin")[1]) for k in range(1, 6))
    assert train == 256
    with pytest.raises(DataError, match="no CIFAR-10 batches"):
        datasets.cifar_like(tiny_data, want="cifar10")


def test_retarget_points_train_and_test_layers_at_the_dataset(tiny_data):
    ds = datasets.mnist_like(tiny_data)
    net = datasets.retarget(read_net("prototxt/lenet/lenet_train_test.prototxt"), ds)
    sources = {tuple(r.phase for r in lp.include): lp.data_param.source
               for lp in net.layer if lp.type == "Data"}
    assert sources == {("TRAIN",): ds.train, ("TEST",): ds.test}


def test_two_writers_of_the_same_batch_do_not_take_each_others_file(tmp_path, monkeypatch):
    """Two experiments started side by side write the padded stand-in at the same time: one
    writer finishing between the other's write and rename must not break the other (a shared
    `.tmp` name did: FileNotFoundError in the second rename)."""
    path = str(tmp_path / "data_batch_1.bin")
    images = np.zeros((2, 3, 32, 32), np.uint8)
    labels = np.array([1, 2], np.uint8)
    real_replace = os.replace
    calls = []

    def replace_after_the_other_writer(src, dst):
        if not calls:
            calls.append(src)
            datasets.write_cifar_batch(path, images, labels)      # the other writer, whole
        real_replace(src, dst)

    monkeypatch.setattr(datasets.os, "replace", replace_after_the_other_writer)
    datasets.write_cifar_batch(path, images, labels)
    assert os.path.getsize(path) == 2 * (1 + 3 * 32 * 32)
    assert os.listdir(tmp_path) == ["data_batch_1.bin"]          # no temporary file left
