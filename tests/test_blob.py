"""Blob: storage reuse, diff allocation, sharing."""
import re

import numpy as np
import pytest

from minicaffe.blob import Blob
from minicaffe.errors import AllocationError


def test_reshape_keeps_storage_when_it_fits():
    b = Blob((4, 5))
    b.data[...] = np.arange(20).reshape(4, 5)
    store = b._data_store
    b.reshape(2, 10)
    assert b._data_store is store
    np.testing.assert_array_equal(b.data.ravel(), np.arange(20))
    b.reshape((3, 2))
    assert b.shape == (3, 2) and b.count == 6 and b._data_store is store


def test_growing_keeps_values_and_diff_has_data_shape():
    b = Blob((2, 3))
    b.data[...] = 1.5
    b.reshape(4, 3)
    assert b.data.shape == b.diff.shape == (4, 3)
    np.testing.assert_array_equal(b.data[:2], 1.5)
    np.testing.assert_array_equal(b.diff, 0)


def test_negative_dimension_names_blob():
    with pytest.raises(ValueError, match=r"blob 'x': negative dimension in shape \(2, -1\)"):
        Blob((2, -1), name="x")


def test_share_data_sees_writes_and_keeps_own_diff_sized():
    src, top = Blob((2, 3)), Blob((1,))
    top.diff[...] = 7                      # a small diff of its own
    top.share_data(src)
    src.data[...] = 3
    np.testing.assert_array_equal(top.data, 3)
    assert top.diff.shape == (2, 3)        # re-sized, not the stale (1,) diff
    top.diff[...] = 1
    np.testing.assert_array_equal(src.diff, 0)   # diffs stay separate

    src.reshape(8, 3)                      # a larger batch: storage reallocated
    top.share_data(src)
    assert top.data.shape == top.diff.shape == (8, 3)


def test_share_diff_shares_gradients():
    a, b = Blob((3,)), Blob((3,))
    b.share_data(a)
    b.share_diff(a)
    b.diff[...] = 2
    np.testing.assert_array_equal(a.diff, 2)


def test_legacy_accessors_and_astype():
    b = Blob((2, 3, 4, 5))
    assert (b.num, b.channels, b.height, b.width) == (2, 3, 4, 5)
    assert Blob((7,)).channels == 1
    b.data[...] = 0.25
    b.astype(np.float64)
    assert b.data.dtype == np.float64 and b.data[0, 0, 0, 0] == 0.25


@pytest.mark.parametrize("shape, size", [
    ((100000, 1000, 1000), r"400\.0 GB"),                 # more than this machine's memory
    ((10**6,) * 4, r"4e\+24 bytes"),                       # past NumPy's maximum array size
    ((2**40, 2**40), r"4\.84e\+24 bytes"),
])
def test_a_blob_too_large_for_memory_names_itself_and_the_size(shape, size):
    """A huge input_dim used to end in a bare MemoryError (or NumPy's 'array is too big')."""
    with pytest.raises(AllocationError, match=rf"^blob 'data': shape {re.escape(str(shape))} "
                                              rf"of float32 needs {size}") as err:
        Blob(shape, name="data")
    assert isinstance(err.value, MemoryError)


def test_a_failed_grow_leaves_the_blob_as_it_was():
    b = Blob((2, 3), name="x")
    b.data[...] = 7
    with pytest.raises(AllocationError):
        b.reshape((10**6,) * 4)
    assert b.shape == (2, 3) and (b.data == 7).all()


def test_reshape_to_the_same_shape_keeps_the_array_and_the_layout_version():
    b = Blob((2, 3))
    data, version = b.data, Blob.layout_version
    b.reshape(2, 3)
    b.reshape((2, 3))
    assert b.data is data and Blob.layout_version == version
    b.reshape(3, 2)                        # same storage, another shape: a new layout
    assert b.data is not data and Blob.layout_version > version


def test_layout_version_counts_moves_of_storage_and_shape():
    a, b = Blob((2, 3)), Blob((2, 3))
    version = Blob.layout_version
    b.share_data(a)                        # b's storage changes
    assert Blob.layout_version == version + 1
    b.share_data(a)                        # nothing changes (Split does this every forward)
    assert Blob.layout_version == version + 1
    a.reshape(5, 3)                        # grows: new storage
    assert Blob.layout_version == version + 2
    b.astype(np.float64)
    assert Blob.layout_version == version + 3


def test_astype_rebuilds_the_views_even_at_the_same_shape():
    b = Blob((2, 2))
    b.data[...] = 1.25
    b.astype(np.float64)
    assert b.data.dtype == np.float64 and np.shares_memory(b.data, b._data_store)
    np.testing.assert_array_equal(b.data, 1.25)
