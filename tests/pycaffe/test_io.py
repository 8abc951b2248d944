"""caffe.io: blob/datum conversions, image loading, resizing, oversampling and Transformer."""
import io as _io

import numpy as np
import pytest

pytest.importorskip("google.protobuf", reason="protobuf not installed (pip install 'minicaffe[pycaffe]')")

import minicaffe as caffe  # noqa: E402
from minicaffe.proto import caffe_pb2  # noqa: E402

Image = pytest.importorskip("PIL.Image")


# -- BlobProto / Datum -----------------------------------------------------------------------
def test_blobproto_old_new_missing_and_scalar_shapes():
    blob = caffe_pb2.BlobProto()
    blob.data.extend(np.zeros(100).tolist())
    blob.num, blob.channels, blob.height, blob.width = 1, 1, 10, 10
    assert caffe.io.blobproto_to_array(blob).shape == (1, 1, 10, 10)
    blob = caffe_pb2.BlobProto()
    blob.data.extend(np.arange(100.0).tolist())
    blob.shape.dim.extend([10, 10])
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), np.arange(100.0).reshape(10, 10))
    blob.ClearField("shape")
    with pytest.raises(ValueError):
        caffe.io.blobproto_to_array(blob)                 # 100 values, no shape
    blob = caffe_pb2.BlobProto()
    blob.data.append(123)
    assert caffe.io.blobproto_to_array(blob) == 123       # 0-d: no shape, one value


def test_blobproto_round_trip_diff_double_and_vector():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    diff = -arr
    blob = caffe.io.array_to_blobproto(arr, diff)
    assert list(blob.shape.dim) == [2, 3, 4] and not blob.HasField("num")
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), arr)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob, return_diff=True), diff)
    double = caffe_pb2.BlobProto()
    double.shape.dim.extend([3])
    double.double_data.extend([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(double), [0.1, 0.2, 0.3])
    arrays = [arr, np.ones((5,), np.float32), np.zeros((1, 1, 2, 2), np.float32)]
    data = caffe.io.arraylist_to_blobprotovector_str(arrays)
    assert isinstance(data, bytes)
    for a, b in zip(caffe.io.blobprotovector_str_to_arraylist(data), arrays):
        np.testing.assert_array_equal(a, b)


def test_datum_uint8_float_label_and_encoded():
    img = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    datum = caffe.io.array_to_datum(img, label=7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 7)
    assert datum.data == img.tobytes() and not datum.float_data
    out = caffe.io.datum_to_array(datum)
    assert out.dtype == np.uint8 and np.array_equal(out, img)
    f = caffe.io.array_to_datum(img.astype(np.float64) / 2)
    assert not f.data and not f.HasField("label")
    np.testing.assert_array_equal(caffe.io.datum_to_array(f), img / 2)
    # not setting the label gives a smaller record
    assert len(caffe.io.array_to_datum(np.ones((10, 10, 3)), label=1).SerializeToString()) > \
        len(caffe.io.array_to_datum(np.ones((10, 10, 3))).SerializeToString())
    with pytest.raises(ValueError, match="Incorrect array shape"):
        caffe.io.array_to_datum(np.ones((2, 2)))
    # an encoded (PNG) datum decodes to C x H x W, BGR, as Caffe's data layer reads it
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 200                                     # red
    buf = _io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    enc = caffe_pb2.Datum(data=buf.getvalue(), encoded=True, label=1)
    chw = caffe.io.datum_to_array(enc)
    assert chw.shape == (3, 2, 3) and chw[2].max() == 200 and chw[0].max() == 0


# -- images ----------------------------------------------------------------------------------
@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((5, 7), 128, np.uint8)])
    paths = {}
    for name, arr in (("rgb", rgb), ("gray", gray), ("rgba", rgba)):
        paths[name] = str(tmp_path / f"{name}.png")
        Image.fromarray(arr).save(paths[name])
    return paths, rgb, gray


def test_load_image_is_float_rgb_in_unit_range(images):
    pytest.importorskip("skimage", reason="scikit-image not installed (pip install 'minicaffe[pycaffe]')")
    paths, rgb, gray = images
    img = caffe.io.load_image(paths["rgb"])
    assert img.dtype == np.float32 and img.shape == (5, 7, 3)
    np.testing.assert_allclose(img, rgb / 255.0, rtol=1e-6)
    g = caffe.io.load_image(paths["gray"])
    assert g.shape == (5, 7, 3) and np.array_equal(g[..., 0], g[..., 2])
    np.testing.assert_allclose(g[..., 1], gray / 255.0, rtol=1e-6)
    assert caffe.io.load_image(paths["gray"], color=False).shape == (5, 7, 1)
    a = caffe.io.load_image(paths["rgba"])
    assert a.shape == (5, 7, 3)
    np.testing.assert_allclose(a, rgb / 255.0, rtol=1e-6)          # alpha dropped
    lum = caffe.io.load_image(paths["rgb"], color=False)
    assert lum.shape == (5, 7, 1)
    # scikit-image's luminance (ITU-R 709 weights), which pycaffe inherits
    np.testing.assert_allclose(lum[..., 0], rgb @ np.array([0.2125, 0.7154, 0.0721]) / 255.0, atol=1e-5)
    with pytest.raises((FileNotFoundError, OSError)):
        caffe.io.load_image(paths["rgb"] + ".missing")


def test_resize_image_shapes_identity_constant_and_other_channel_counts(rng):
    pytest.importorskip("skimage", reason="scikit-image not installed (pip install 'minicaffe[pycaffe]')")
    im = rng.uniform(-3, 5, (6, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(caffe.io.resize_image(im, (6, 8)), im, rtol=1e-5, atol=1e-5)
    up = caffe.io.resize_image(im, (12, 16))
    assert up.shape == (12, 16, 3) and up.dtype == np.float32
    assert up.min() >= im.min() - 1e-5 and up.max() <= im.max() + 1e-5
    # bilinear upsampling by 2: an interior output pixel is the mean of its 2x2 input blend
    r, c = 5, 7                                          # centre (5.5, 7.5) -> input (2.5, 3.5) - .5
    np.testing.assert_allclose(up[r, c], 0.75 * (0.75 * im[2, 3] + 0.25 * im[2, 4])
                               + 0.25 * (0.75 * im[3, 3] + 0.25 * im[3, 4]), rtol=1e-4, atol=1e-5)
    const = caffe.io.resize_image(np.full((3, 3, 1), 2.5, np.float32), (5, 4))
    assert const.shape == (5, 4, 1) and np.all(const == 2.5)
    two = caffe.io.resize_image(rng.standard_normal((4, 4, 2)), (8, 8))
    assert two.shape == (8, 8, 2) and two.dtype == np.float32


def test_oversample_gives_corners_centre_then_mirrors():
    im = np.arange(6 * 8 * 2, dtype=np.float32).reshape(6, 8, 2)
    crops = caffe.io.oversample([im, im + 1000], (4, 4))
    assert crops.shape == (20, 4, 4, 2)
    expected = [im[0:4, 0:4], im[0:4, 4:8], im[2:6, 0:4], im[2:6, 4:8], im[1:5, 2:6]]
    for k, e in enumerate(expected):
        np.testing.assert_array_equal(crops[k], e)
        np.testing.assert_array_equal(crops[5 + k], e[:, ::-1])
        np.testing.assert_array_equal(crops[10 + k], e + 1000)


# -- Transformer -----------------------------------------------------------------------------
def test_transformer_preprocess_and_deprocess(rng):
    t = caffe.io.Transformer({"data": (1, 3, 4, 5)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    mean = np.array([10.0, 20.0, 30.0])
    t.set_mean("data", mean)
    t.set_input_scale("data", 0.5)
    img = rng.uniform(0, 1, (4, 5, 3)).astype(np.float32)
    out = t.preprocess("data", img)
    manual = (img.transpose(2, 0, 1)[[2, 1, 0]] * 255 - mean[:, None, None]) * 0.5
    assert out.shape == (3, 4, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out, manual, rtol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", out[None]), img, rtol=1e-5, atol=1e-5)


def test_transformer_resizes_inputs_and_means(rng):
    pytest.importorskip("skimage", reason="scikit-image not installed (pip install 'minicaffe[pycaffe]')")
    t = caffe.io.Transformer({"data": (2, 3, 4, 4)})
    t.set_transpose("data", (2, 0, 1))
    assert t.preprocess("data", rng.uniform(0, 1, (8, 8, 3))).shape == (3, 4, 4)
    mean_image = rng.uniform(100, 120, (3, 8, 8))
    t.set_mean("data", mean_image)
    assert t.mean["data"].shape == (3, 4, 4)
    assert mean_image.min() - 1e-3 <= t.mean["data"].min() <= t.mean["data"].max() <= mean_image.max() + 1e-3


def test_transformer_refuses_bad_settings():
    t = caffe.io.Transformer({"data": (1, 3, 4, 4)})
    with pytest.raises(ValueError, match="not one of the net inputs"):
        t.set_raw_scale("label", 1)
    with pytest.raises(ValueError, match="Transpose order"):
        t.set_transpose("data", (1, 0))
    with pytest.raises(ValueError, match="Channel swap"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(ValueError, match="Mean channels incompatible"):
        t.set_mean("data", np.zeros(4))
    with pytest.raises(ValueError, match="Mean channels incompatible"):
        t.set_mean("data", np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="Mean shape invalid"):
        t.set_mean("data", np.zeros((1, 1, 3, 4, 4)))
