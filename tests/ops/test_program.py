"""ops.Program: bound calls equal the ops they stand for; ranges, guards, Python steps, errors.

The new elementwise kernels (relu_forward, softmax_forward, linear_forward) are checked against
NumPy references here too, NaN and inf included, under every instruction set the CPU runs
(the `isa` fixture).
"""
import numpy as np
import pytest

from minicaffe import ops
from minicaffe.errors import KernelError
from minicaffe.ops import native
from minicaffe.testing import reference

pytestmark = pytest.mark.native


@pytest.fixture(autouse=True)
def _kernels():
    if not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")


DTYPES = [np.float32, np.float64]


def tol(dtype):
    return {"rtol": 2e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-13, "atol": 1e-13}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("group", [1, 2])
def test_conv_step_equals_op(isa, rng, dtype, group):
    geom = ops.ConvGeometry(4, 7, 6, 3, 2, 1, 0, 2, 1)
    x = rng.standard_normal((3, 4, 7, 6)).astype(dtype)
    w = rng.standard_normal((6, geom.rows // group)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    y = np.empty((3, 6, geom.cols), dtype)
    prog = ops.Program()
    assert prog.conv_forward_nchw(x, geom, w, group, b, y) == 0
    assert prog.run() is None
    np.testing.assert_array_equal(y, ops.conv_forward_nchw(x, geom, w, group, b))
    x[...] = rng.standard_normal(x.shape)           # new values, same arrays: run again
    prog.run()
    np.testing.assert_array_equal(y, ops.conv_forward_nchw(x, geom, w, group, b))


@pytest.mark.parametrize("dtype", DTYPES)
def test_compact_conv_step_equals_dense(isa, rng, dtype):
    geom = ops.ConvGeometry(3, 6, 6, 3, 3, 1, 1)
    w = rng.standard_normal((8, geom.rows)).astype(dtype)
    w[[1, 4, 5]] = 0                                 # removed filters
    w[:, ::3] = 0                                    # removed shape fibres
    x = rng.standard_normal((2, 3, 6, 6)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    y = np.empty((2, 8, geom.cols), dtype)
    prog = ops.Program()
    prog.conv_forward_nchw(x, geom, ops.make_weights(w, "compact"), 1, b, y)
    prog.run()
    np.testing.assert_allclose(y, ops.conv_forward_nchw(x, geom, w, 1, b), **tol(dtype))


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_pool_steps_equal_ops(isa, rng, method):
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    geometry = (3, 2), (1, 0), (2, 3), (5, 3)
    y = np.empty((2, 3, 5, 3), np.float32)
    prog = ops.Program()
    if method == "MAX":
        mask = np.empty(y.shape, np.int32)
        prog.max_pool_forward(x, *geometry, out=y, mask=mask)
        prog.run()
        want, want_mask = ops.max_pool_forward(x, *geometry)
        np.testing.assert_array_equal(mask, want_mask)
    else:
        prog.ave_pool_forward(x, *geometry, out=y)
        prog.run()
        want = ops.ave_pool_forward(x, *geometry)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_w", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_step(isa, rng, dtype, trans_w, bias):
    x = rng.standard_normal((3, 7)).astype(dtype)
    w = rng.standard_normal((5, 7) if trans_w else (7, 5)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype) if bias else None
    y = np.empty((3, 5), dtype)
    prog = ops.Program()
    prog.linear_forward(x, w, b, y, trans_w=trans_w)
    prog.run()
    want = reference.gemm(x, w, trans_b=trans_w) + (0 if b is None else b)
    np.testing.assert_allclose(y, want, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("in_place", [False, True])
def test_relu_step(isa, rng, dtype, slope, in_place):
    x = rng.standard_normal((2, 3, 37)).astype(dtype)
    x[0, 0, :4] = [np.nan, np.inf, -np.inf, 0.0]
    want = reference.relu(x, slope)
    y = x if in_place else np.empty_like(x)
    prog = ops.Program()
    prog.relu_forward(x, y, slope)
    prog.run()
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((4, 10), 1), ((2, 5, 3, 4), 1), ((3, 4, 6), 2),
                                         ((6, 3), 0), ((1, 1), 1)])
def test_softmax_step(isa, rng, dtype, shape, axis):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    y = np.empty_like(x)
    prog = ops.Program()
    prog.softmax_forward(x, y, axis)
    prog.run()
    np.testing.assert_allclose(y, reference.softmax(x, axis), **tol(dtype))


def test_softmax_non_finite_matches_numpy(isa):
    x = np.array([[1.0, np.nan, 2.0], [np.inf, 0.0, 1.0], [-np.inf, 0.0, 0.0]], np.float32)
    y = np.empty_like(x)
    native.kernels().softmax_forward(x, y, 3, 3, 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(reference.softmax(x, 1)))
    np.testing.assert_allclose(y[2], reference.softmax(x, 1)[2], rtol=1e-6)


def test_copy_and_python_steps_run_in_order(rng):
    x = rng.standard_normal(10).astype(np.float32)
    y = np.empty_like(x)
    seen = []
    prog = ops.Program()
    prog.python(lambda: seen.append(("before", y.copy())))
    prog.copy(x, y)
    prog.python(lambda: seen.append(("after", y.copy())))
    y[...] = 0
    prog.run()
    assert [k for k, _ in seen] == ["before", "after"]
    np.testing.assert_array_equal(seen[0][1], 0)
    np.testing.assert_array_equal(seen[1][1], x)


def test_run_ranges_and_stops(rng):
    x = np.zeros(4, np.float32)
    out = [np.empty(4, np.float32) for _ in range(3)]
    prog = ops.Program()
    for o in out:
        prog.copy(x, o)                            # steps 0, 1, 2
    prog.python(lambda: True)                      # step 3 stops the run
    prog.copy(x, out[0])                           # step 4 never runs from 0
    x[...] = 1
    for o in out:
        o[...] = -1
    assert prog.run(1, 1) is None
    assert out[0][0] == -1 and out[1][0] == 1 and out[2][0] == -1
    assert prog.run(2, 2) is None and out[2][0] == 1
    x[...] = 2
    assert prog.run() == 3
    assert out[0][0] == 2
    x[...] = 3
    assert prog.run(4, 4) is None and out[0][0] == 3
    assert prog.run(2, 1) is None                  # an empty range
    with pytest.raises(IndexError, match="not a range"):
        prog.run(0, 5)


def test_guard_stops_when_weights_change(rng):
    w = rng.standard_normal((3, 4)).astype(np.float32)
    x = np.zeros(2, np.float32)
    y = np.ones(2, np.float32)
    prog = ops.Program()
    g = prog.guard(w, w.copy())
    prog.copy(x, y)
    assert prog.is_guard(g) and not prog.is_guard(1) and not prog.is_python(1)
    assert prog.run() is None and y[0] == 0
    y[...] = 1
    w[1, 2] = -w[1, 2]
    assert prog.run() == g
    assert y[0] == 1                               # stopped before the copy
    w[1, 2] = -w[1, 2]
    assert prog.run() is None


def test_errors_carry_the_step():
    prog = ops.Program()
    prog.copy(np.zeros(2, np.float32), np.zeros(2, np.float32))

    def boom():
        raise ValueError("boom")
    prog.python(boom)
    with pytest.raises(ValueError, match="boom") as info:
        prog.run()
    assert info.value.program_step == 1


@pytest.mark.parametrize("call, message", [
    (lambda p, a: p.relu_forward(a, np.empty(5, np.float32)), "relu_forward: y has shape"),
    (lambda p, a: p.copy(a, np.empty(4, np.float64)), "copy: y has dtype"),
    (lambda p, a: p.softmax_forward(a, np.empty_like(a), axis=2), "axis = 2 is out of range"),
    (lambda p, a: p.linear_forward(a[None], np.ones((3, 5), np.float32), None,
                                   np.empty((1, 3), np.float32)), "expects K = 5"),
    (lambda p, a: p.guard(a, a[:3].copy()), "guard: snapshot has shape"),
    (lambda p, a: p.conv_forward_nchw(a, ops.ConvGeometry(1, 2, 2, 1, 1), a), "out must be given"),
])
def test_bad_arguments_name_the_op(call, message):
    a = np.zeros(4, np.float32)
    prog = ops.Program()
    with pytest.raises((KernelError, TypeError), match=message):
        call(prog, a)
    assert len(prog) == 0


def test_read_only_output_refused():
    a = np.zeros(4, np.float32)
    y = np.zeros(4, np.float32)
    y.flags.writeable = False
    with pytest.raises(KernelError, match="read-only"):
        ops.Program().relu_forward(a, y)


def test_kernel_entry_points_check_too():
    k = native.kernels()
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(KernelError, match="does not split"):
        k.softmax_forward(a, a, 2, 2, 2)
    with pytest.raises(KernelError, match="has shape"):
        k.relu_forward(a, np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        k.relu_forward(a.astype(np.int32), a)


def test_steps_keep_their_arrays_alive(rng):
    prog = ops.Program()
    y = np.empty(1000, np.float32)
    prog.copy(rng.standard_normal(1000).astype(np.float32), y)   # x has no other reference
    prog.relu_forward(np.full(3, -1.0), np.empty(3))             # nor these
    import gc
    gc.collect()
    prog.run()
    assert np.isfinite(y).all()


def test_kept_steps_follow_set_isa(rng):
    """A bound call reads the kernel table when it runs: set_isa applies to kept calls too."""
    from minicaffe.testing.isa import isa_forced

    x = rng.standard_normal(1000).astype(np.float32)
    y = np.empty_like(x)
    prog = ops.Program()
    prog.relu_forward(x, y, 0.25)
    for name in native.ISAS:
        y[...] = np.nan
        try:
            with isa_forced(name):
                assert ops.get_isa() == name
                prog.run()
        except pytest.skip.Exception:
            continue                                # the CPU lacks this one
        np.testing.assert_array_equal(y, reference.relu(x, 0.25))
