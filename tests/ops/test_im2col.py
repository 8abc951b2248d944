import numpy as np
import pytest

from minicaffe import ops
from minicaffe.errors import KernelError
from minicaffe.ops import ConvGeometry
from minicaffe.testing import reference

# (C, H, W, kh, kw, ph, pw, sh, sw, dh, dw): edge cases the lowering must get right.
GEOMETRIES = {
    "1x1": (4, 5, 6, 1, 1, 0, 0, 1, 1, 1, 1),
    "3x3_pad1": (3, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1),
    "stride_gt_kernel": (2, 9, 10, 2, 2, 0, 0, 3, 4, 1, 1),
    "dilation": (2, 9, 8, 3, 2, 0, 1, 1, 2, 2, 3),
    "pad_ge_kernel": (2, 4, 3, 3, 2, 3, 2, 2, 1, 1, 1),
    "rect_all": (3, 11, 7, 5, 3, 2, 1, 3, 2, 1, 2),
    "alexnet_conv1_small": (3, 23, 23, 11, 11, 0, 0, 4, 4, 1, 1),
    "kernel_eq_input": (2, 3, 4, 3, 4, 0, 0, 1, 1, 1, 1),
    # At stride 1, output rows of up to two vectors (AVX-512: 16 float / 8 double lanes each;
    # AVX2: 8 / 4) take the masked-vector path, one or two stores per row; longer ones the
    # contiguous-copy path: both sides of each boundary, for both dtypes and both instruction
    # sets (the `engine` fixture runs each).
    "same_13": (3, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1),
    "row_4": (2, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1),
    "row_5": (2, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1),
    "row_8": (2, 6, 8, 3, 3, 1, 1, 1, 1, 1, 1),
    "row_9": (2, 6, 9, 3, 3, 1, 1, 1, 1, 1, 1),
    "row_16": (2, 5, 16, 3, 3, 1, 1, 1, 1, 1, 1),
    "row_17": (2, 5, 17, 3, 3, 1, 1, 1, 1, 1, 1),
    "row_16_dilated_padded": (2, 9, 14, 3, 3, 2, 2, 1, 1, 2, 2),
    "row_16_wide_pad": (2, 5, 10, 3, 5, 0, 5, 1, 1, 1, 1),
    "same_27_conv2": (2, 7, 27, 5, 5, 2, 2, 1, 1, 1, 1),
    "row_24_no_pad": (2, 6, 28, 5, 5, 0, 0, 1, 1, 1, 1),
    "row_32": (2, 4, 32, 3, 3, 1, 1, 1, 1, 1, 1),
    "row_33": (2, 4, 33, 3, 3, 1, 1, 1, 1, 1, 1),
    "row_30_pad_across_vectors": (2, 5, 12, 3, 7, 1, 12, 1, 1, 1, 3),
}


@pytest.fixture(params=list(GEOMETRIES), ids=list(GEOMETRIES))
def geom(request):
    return ConvGeometry(*GEOMETRIES[request.param])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_im2col_matches_reference(engine, geom, dtype, rng):
    x = rng.standard_normal((geom.C, geom.H, geom.W)).astype(dtype)
    got = ops.im2col(x, geom)
    want = reference.im2col(x, *GEOM_ARGS(geom))
    assert got.dtype == dtype and got.shape == (geom.rows, geom.cols)
    np.testing.assert_array_equal(got, want.astype(dtype))


def GEOM_ARGS(g):
    return (g.C, g.H, g.W, g.kh, g.kw, g.ph, g.pw, g.sh, g.sw, g.dh, g.dw)


@pytest.mark.parametrize("n", [1, 3])
def test_im2col_batch_is_images_side_by_side(engine, geom, n, rng):
    x = rng.standard_normal((n, geom.C, geom.H, geom.W))
    got = ops.im2col_batch(x, geom)
    np.testing.assert_array_equal(got, reference.im2col_batch(x, *GEOM_ARGS(geom)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_col2im_matches_reference(engine, geom, dtype, rng):
    cols = rng.standard_normal((geom.rows, geom.cols)).astype(dtype)
    out = np.full((geom.C, geom.H, geom.W), 7.0, dtype=dtype)  # must be overwritten
    got = ops.col2im(cols, geom, out=out)
    assert got is out
    want = reference.col2im(cols.astype(np.float64), *GEOM_ARGS(geom))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_col2im_batch_matches_reference(engine, geom, rng):
    n = 2
    cols = rng.standard_normal((geom.rows, n * geom.cols))
    got = ops.col2im_batch(cols, geom, n)
    want = reference.col2im_batch(cols, n, *GEOM_ARGS(geom))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_col2im_is_adjoint_of_im2col(engine, geom, rng):
    x = rng.standard_normal((2, geom.C, geom.H, geom.W))
    y = rng.standard_normal((geom.rows, 2 * geom.cols))
    lhs = np.vdot(ops.im2col_batch(x, geom), y)
    rhs = np.vdot(x, ops.col2im_batch(y, geom, 2))
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize("which", ["none", "first", "last", "every_third", "all"])
def test_im2col_rows_equals_rows_of_full_lowering(engine, geom, which, rng):
    rows = {"none": [], "first": [0], "last": [geom.rows - 1],
            "every_third": list(range(0, geom.rows, 3)), "all": list(range(geom.rows))}[which]
    x = rng.standard_normal((2, geom.C, geom.H, geom.W)).astype(np.float32)
    got = ops.im2col_rows(x, geom, np.array(rows, dtype=np.int64))
    full = reference.im2col_batch(x, *GEOM_ARGS(geom)).astype(np.float32)
    np.testing.assert_array_equal(got, full[rows])


@pytest.mark.parametrize("dtype,geometry", [
    ("float32", (64, 27, 27, 3, 3, 1, 1)),   # two 16-lane vectors per row; 1.7 MB per image
    ("float64", (256, 14, 14, 3, 3, 1, 1)),  # two 8-lane vectors per row; 3.6 MB per image
])
def test_im2col_rows_same_on_both_sides_of_the_cached_block_size(isa, dtype, geometry, rng):
    # Two-vector rows take the masked path only while a call lowers at most 4 MB (past the
    # caches the contiguous copy is faster): one image at a time and all five must agree.
    g = ConvGeometry(*geometry)
    x = rng.standard_normal((5, g.C, g.H, g.W)).astype(dtype)
    rows = np.arange(g.rows, dtype=np.int64)
    batch = ops.im2col_rows(x, g, rows)
    for n in range(5):
        one = ops.im2col_rows(x[n:n + 1], g, rows)
        np.testing.assert_array_equal(batch[:, n * g.cols:(n + 1) * g.cols], one)
    want = reference.im2col_batch(x[:2], *GEOM_ARGS(g)).astype(dtype)
    np.testing.assert_array_equal(batch[:, :2 * g.cols], want)


# Output blocks (one lowered row of one image) of at most two vectors: AVX2 stores all but the
# last rows as whole vectors, spilling into the rows after them; a spill must never leave the
# block (past the array, or into the next image's block that another thread wrote already).
@pytest.mark.parametrize("geometry", [
    (64, 4, 4, 3, 3, 0, 0, 1, 1),   # 2x2 outputs: 4 values, less than one vector
    (64, 5, 5, 3, 3, 0, 0, 1, 1),   # 3x3: 9 values, one vector plus one
    (16, 3, 10, 3, 3, 1, 1, 1, 1),  # 3x10: two vectors per row, 30 values
    (16, 13, 13, 3, 3, 1, 1, 1, 1),  # 13x13, AlexNet conv3-5
])
def test_short_rows_stay_inside_their_block(engine, threads, geometry, rng):
    g = ConvGeometry(*geometry)
    n = 16
    x = rng.standard_normal((n, g.C, g.H, g.W)).astype(np.float32)
    size = g.rows * n * g.cols
    flat = np.full(size + 64, 7.0, np.float32)
    out = flat[:size].reshape(g.rows, n * g.cols)
    ops.im2col_rows(x, g, np.arange(g.rows, dtype=np.int64), out=out)
    np.testing.assert_array_equal(out, reference.im2col_batch(x, *GEOM_ARGS(g)))
    assert (flat[size:] == 7.0).all()


def test_out_is_written_in_place(engine, rng):
    g = ConvGeometry(2, 5, 5, 3, 3, 1, 1)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    out = np.full((g.rows, g.cols), np.nan, dtype=np.float32)
    assert ops.im2col_batch(x, g, out=out) is out
    np.testing.assert_array_equal(out, reference.im2col_batch(x, *GEOM_ARGS(g)))


def test_non_contiguous_input_is_accepted(engine, rng):
    g = ConvGeometry(2, 5, 4, 2, 2)
    x = rng.standard_normal((2, 4, 5)).transpose(0, 2, 1)  # (C, H=5, W=4) view
    np.testing.assert_array_equal(ops.im2col(x, g), reference.im2col(x, *GEOM_ARGS(g)))


# --- bad input ---------------------------------------------------------------------------

def test_integer_input_is_a_type_error(engine):
    g = ConvGeometry(1, 3, 3, 2, 2)
    with pytest.raises(TypeError, match=r"^im2col: x has dtype int64; expected float32 or "
                                        r"float64$"):
        ops.im2col(np.zeros((1, 3, 3), dtype=np.int64), g)


def test_shape_mismatch_names_both_shapes(engine):
    g = ConvGeometry(3, 4, 4, 2, 2)
    with pytest.raises(KernelError, match=r"^im2col_batch: x has shape \(2, 3, 4, 5\); geom "
                                          r"expects \(N, C, H, W\) = \(N, 3, 4, 4\)$"):
        ops.im2col_batch(np.zeros((2, 3, 4, 5), np.float32), g)


def test_kernel_larger_than_padded_input(engine):
    g = ConvGeometry(1, 3, 3, 5, 5)
    with pytest.raises(KernelError, match="does not fit the padded input 3x3"):
        ops.im2col(np.zeros((1, 3, 3), np.float32), g)


@pytest.mark.parametrize("field,value,low", [("kh", 0, 1), ("ph", -1, 0), ("sw", 0, 1),
                                             ("dh", 0, 1)])
def test_bad_geometry_field(engine, field, value, low):
    args = dict(C=1, H=4, W=4, kh=2, kw=2)
    args[field] = value
    with pytest.raises(KernelError, match=rf"^im2col: geom.{field} = {value}; expected an "
                                          rf"integer >= {low}$"):
        ops.im2col(np.zeros((1, 4, 4), np.float32), ConvGeometry(**args))


def test_out_with_wrong_shape_dtype_or_layout(engine):
    g = ConvGeometry(1, 4, 4, 2, 2)
    x = np.zeros((1, 4, 4), np.float32)
    with pytest.raises(KernelError, match=r"^im2col: out has shape \(4, 8\); expected \(4, 9\)$"):
        ops.im2col(x, g, out=np.zeros((4, 8), np.float32))
    with pytest.raises(TypeError, match=r"^im2col: out has dtype float64; expected float32$"):
        ops.im2col(x, g, out=np.zeros((4, 9)))
    with pytest.raises(KernelError, match=r"^im2col: out must be C-contiguous"):
        ops.im2col(x, g, out=np.zeros((9, 4), np.float32).T)


@pytest.mark.parametrize("rows,message", [
    ([0, 4], r"rows\[1\] = 4; expected indices in \[0, 4\)"),
    ([-1, 2], r"rows\[0\] = -1; expected indices in \[0, 4\)"),
    ([2, 1], r"rows is not strictly increasing at position 1 \(2 then 1\)"),
    ([1, 1], r"rows is not strictly increasing at position 1 \(1 then 1\)"),
])
def test_bad_row_lists(engine, rows, message):
    g = ConvGeometry(1, 4, 4, 2, 2)
    with pytest.raises(KernelError, match="^im2col_rows: " + message + "$"):
        ops.im2col_rows(np.zeros((1, 1, 4, 4), np.float32), g, rows)


def test_col2im_batch_rejects_bad_n_and_shape(engine):
    g = ConvGeometry(1, 4, 4, 2, 2)
    with pytest.raises(KernelError, match=r"^col2im_batch: N = 0; expected an integer >= 1$"):
        ops.col2im_batch(np.zeros((4, 9)), g, 0)
    with pytest.raises(KernelError, match=r"^col2im_batch: cols has shape \(4, 9\); expected "
                                          r"\(C\*kh\*kw, N\*oh\*ow\) = \(4, 18\)$"):
        ops.col2im_batch(np.zeros((4, 9)), g, 2)


def test_gpu_arrays_get_a_clear_error(engine):
    class FakeDeviceArray:  # what CuPy arrays expose
        __cuda_array_interface__ = {}

    with pytest.raises(TypeError, match=r"^im2col: x is a GPU array \(.*FakeDeviceArray\); "
                                        r"minicaffe.ops runs on the CPU only so far"):
        ops.im2col(FakeDeviceArray(), ConvGeometry(1, 3, 3, 2, 2))


def test_geometry_caches_derived_values_without_changing_equality():
    """Derived sizes are cached on the instance; equality, hashing and replace() see fields."""
    import dataclasses

    g = ConvGeometry(3, 13, 13, 3, 3, 1, 1)
    fresh = ConvGeometry(3, 13, 13, 3, 3, 1, 1)
    assert (g.oh, g.ow, g.rows, g.cols) == (13, 13, 27, 169)
    assert g.native == (3, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1)
    assert g.image_shape == (3, 13, 13) and g.problem is None
    assert g == fresh and hash(g) == hash(fresh)  # fresh has no cached values yet
    strided = dataclasses.replace(g, sh=2, sw=2)
    assert (strided.oh, strided.ow, strided.cols) == (7, 7, 49)
    assert strided.native[7:9] == (2, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.C = 4


def test_same_bad_geometry_named_by_each_operation(engine):
    g = ConvGeometry(1, 4, 4, 2, 2, sh=0)
    for call, op in ((lambda: ops.im2col(np.zeros((1, 4, 4), np.float32), g), "im2col"),
                     (lambda: ops.im2col_batch(np.zeros((1, 1, 4, 4), np.float32), g),
                      "im2col_batch")):
        with pytest.raises(KernelError, match=rf"^{op}: geom.sh = 0; expected an integer >= 1$"):
            call()
