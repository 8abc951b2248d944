"""ops.conv_forward_nchw / ops.conv_backward against a direct convolution written with loops
over the kernel taps (no lowering), on both engines, one and two threads, and with chunks of
one image and of several (block_bytes)."""
import numpy as np
import pytest

from minicaffe import ops
from minicaffe.errors import KernelError
from minicaffe.ops import ConvGeometry


def taps(x, g):
    """{(i, j): x windows (N, C, oh, ow) read by kernel tap (i, j)} of the zero-padded x."""
    xp = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    return {(i, j): xp[:, :, i * g.dh:i * g.dh + g.sh * (g.oh - 1) + 1:g.sh,
                       j * g.dw:j * g.dw + g.sw * (g.ow - 1) + 1:g.sw]
            for i in range(g.kh) for j in range(g.kw)}


def direct_forward(x, g, w4, group, bias):
    N, M = x.shape[0], w4.shape[0]
    mg, cg = M // group, g.C // group
    y = np.zeros((N, M, g.oh, g.ow))
    for (i, j), patch in taps(x, g).items():
        for gi in range(group):
            m, c = slice(gi * mg, (gi + 1) * mg), slice(gi * cg, (gi + 1) * cg)
            y[:, m] += np.einsum("mc,ncyx->nmyx", w4[m, :, i, j], patch[:, c])
    if bias is not None:
        y += bias[None, :, None, None]
    return y.reshape(N, M, -1)


def direct_backward(x, g, w4, group, dy):
    """(dw4, db, dx) of direct_forward for the upstream gradient dy (N, M, oh*ow)."""
    N, M = x.shape[0], w4.shape[0]
    mg, cg = M // group, g.C // group
    dy4 = dy.reshape(N, M, g.oh, g.ow)
    dw4 = np.zeros_like(w4)
    dxp = np.zeros((N, g.C, g.H + 2 * g.ph, g.W + 2 * g.pw))
    for (i, j), patch in taps(x, g).items():
        for gi in range(group):
            m, c = slice(gi * mg, (gi + 1) * mg), slice(gi * cg, (gi + 1) * cg)
            dw4[m, :, i, j] = np.einsum("nmyx,ncyx->mc", dy4[:, m], patch[:, c])
            dxp[:, c, i * g.dh:i * g.dh + g.sh * (g.oh - 1) + 1:g.sh,
                j * g.dw:j * g.dw + g.sw * (g.ow - 1) + 1:g.sw] += \
                np.einsum("mc,nmyx->ncyx", w4[m, :, i, j], dy4[:, m])
    dx = dxp[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W]
    return dw4, dy4.sum(axis=(0, 2, 3)), dx


CASES = [  # (C, H, W, kh, kw, ph, pw, sh, sw, dh, dw), M, group
    ((3, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1), 4, 1),
    ((4, 7, 9, 3, 2, 2, 0, 2, 1, 1, 2), 6, 2),
    ((6, 11, 11, 5, 5, 2, 2, 1, 1, 1, 1), 3, 3),
    ((2, 5, 5, 1, 1, 0, 0, 3, 3, 1, 1), 5, 1),
]


def random_case(rng, case, n):
    """(geometry, M, group, x (n, C, H, W), w4 (M, C/group, kh, kw)) for one of CASES."""
    geom, M, group = case
    g = ConvGeometry(*geom)
    return (g, M, group, rng.standard_normal((n, g.C, g.H, g.W)),
            rng.standard_normal((M, g.C // group, g.kh, g.kw)))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n", [1, 2, 7])
@pytest.mark.parametrize("block_bytes", [1, 1 << 20], ids=["chunk1", "chunkmany"])
def test_forward_matches_direct(engine, threads, rng, case, n, block_bytes):
    g, M, group, x, w4 = random_case(rng, case, n)
    bias = rng.standard_normal(M)
    out = np.full((n, M, g.cols), np.nan)
    got = ops.conv_forward_nchw(x, g, w4.reshape(M, -1), group, bias, out=out,
                                block_bytes=block_bytes)
    assert got is out
    np.testing.assert_allclose(got, direct_forward(x, g, w4, group, bias), rtol=1e-12,
                               atol=1e-12)
    nobias = ops.conv_forward_nchw(x, g, w4.reshape(M, -1), group, block_bytes=block_bytes)
    np.testing.assert_allclose(nobias, direct_forward(x, g, w4, group, None), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n", [1, 2, 7])
@pytest.mark.parametrize("block_bytes", [1, 1 << 20], ids=["chunk1", "chunkmany"])
def test_backward_matches_direct(engine, threads, rng, case, n, block_bytes):
    g, M, group, x, w4 = random_case(rng, case, n)
    dy = rng.standard_normal((n, M, g.cols))
    dw0, db0 = rng.standard_normal((M, w4[0].size)), rng.standard_normal(M)
    dw, db = dw0.copy(), db0.copy()
    dx = np.full(x.shape, np.nan)
    ops.conv_backward(x, g, w4.reshape(M, -1), dy, dw, group, db=db, dx=dx,
                      block_bytes=block_bytes)
    want_dw, want_db, want_dx = direct_backward(x, g, w4, group, dy)
    np.testing.assert_allclose(dw, dw0 + want_dw.reshape(M, -1), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(db, db0 + want_db, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-11, atol=1e-11)
    # without db and dx only dw moves
    dw2 = np.zeros_like(dw0)
    ops.conv_backward(x, g, w4.reshape(M, -1), dy, dw2, group, block_bytes=block_bytes)
    np.testing.assert_allclose(dw2, want_dw.reshape(M, -1), rtol=1e-11, atol=1e-11)


def test_float32_and_repeatable(engine, threads, rng):
    g = ConvGeometry(8, 12, 12, 3, 3, 1, 1, 1, 1)
    x = rng.standard_normal((9, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 72)).astype(np.float32)
    dy = rng.standard_normal((9, 16, 144)).astype(np.float32)
    w4 = w.astype(np.float64).reshape(16, 8, 3, 3)
    y = ops.conv_forward_nchw(x, g, w, block_bytes=4096)
    np.testing.assert_allclose(y, direct_forward(x.astype(np.float64), g, w4, 1, None),
                               rtol=1e-4, atol=1e-4)
    runs = []
    for _ in range(2):
        dw, db, dx = np.zeros_like(w), np.zeros(16, np.float32), np.empty_like(x)
        ops.conv_backward(x, g, w, dy, dw, db=db, dx=dx, block_bytes=4096)
        runs.append((dw, db, dx))
    for a, b in zip(*runs):  # a fixed thread count gives bit-identical sums
        assert np.array_equal(a, b)
    want = direct_backward(x.astype(np.float64), g, w4, 1, dy.astype(np.float64))
    np.testing.assert_allclose(runs[0][0], want[0].reshape(16, -1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(runs[0][1], want[1], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(runs[0][2], want[2], rtol=1e-4, atol=1e-4)


# float32 takes the compiled engine's own path for row stride 1 (kernels/conv.cc,
# conv_forward_strips: no lowered matrix, strips of 48 output pixels packed from a padded copy
# of each image); these shapes cross its edges: strips spanning output rows, rows narrower than
# a vector, a last strip evened out (P = 64), filter counts that leave a partial tile, groups.
F32_CASES = CASES + [
    ((3, 32, 32, 5, 5, 2, 2, 1, 1, 1, 1), 32, 1),   # CIFAR-10 quick conv1
    ((32, 8, 8, 5, 5, 2, 2, 1, 1, 1, 1), 64, 1),    # its conv3: P = 64, rows of 8
    ((1, 28, 28, 5, 5, 0, 0, 1, 1, 1, 1), 6, 1),    # LeNet conv1: rows of 24, 12 strips
    ((5, 13, 37, 3, 3, 1, 4, 2, 1, 2, 3), 13, 1),   # stride 2 down, dilation 2 x 3, pad 4
    ((8, 9, 19, 3, 3, 1, 1, 1, 1, 1, 1), 12, 4),    # four groups
    ((2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1), 9, 1),      # P = 9: one strip, one piece per row
    ((4, 130, 520, 3, 3, 1, 1, 1, 1, 1, 1), 2, 1),  # padded copy over 1 MB: not kept per layer
    # over 2M multiply-adds: one image's strips are split between two threads, each thread's
    # range of pixels cut into strips on its own (P = 400: 192 | 208 = 4 x 48 + 32 + 32)
    ((16, 20, 20, 3, 3, 1, 1, 1, 1, 1, 1), 64, 1),
    # column stride 2 (even lanes of two loads per piece): ResNet's downsampling 3 x 3, a wide
    # row with dilation, one split between threads; its 1 x 1 projection (lowered matrix
    # smaller than the image: the lowering path) and a 1 x 1 at stride 1 (strips)
    ((16, 16, 16, 3, 3, 1, 1, 2, 2, 1, 1), 32, 1),
    ((16, 16, 16, 1, 1, 0, 0, 2, 2, 1, 1), 32, 1),
    ((8, 6, 10, 1, 1, 0, 0, 1, 1, 1, 1), 12, 1),
    ((3, 9, 71, 3, 3, 2, 1, 1, 2, 2, 2), 10, 1),
    ((32, 32, 32, 3, 3, 1, 1, 2, 2, 1, 1), 32, 1),
]


def f32_case(rng, case, n):
    g, M, group, x, w4 = random_case(rng, case, n)
    return (g, M, group, x.astype(np.float32), w4.astype(np.float32),
            rng.standard_normal(M).astype(np.float32))


@pytest.mark.parametrize("case", F32_CASES)
@pytest.mark.parametrize("n", [1, 3])
def test_float32_forward_matches_direct(engine, threads, rng, case, n):
    g, M, group, x, w4, bias = f32_case(rng, case, n)
    out = np.full((n, M, g.cols), np.nan, np.float32)
    got = ops.conv_forward_nchw(x, g, w4.reshape(M, -1), group, bias, out=out)
    assert got is out
    want = direct_forward(x.astype(np.float64), g, w4.astype(np.float64), group,
                          bias.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    nobias = ops.conv_forward_nchw(x, g, w4.reshape(M, -1), group)
    np.testing.assert_allclose(nobias, want - bias[:, None], rtol=1e-5, atol=1e-4)


def test_float32_padded_copies_of_many_geometries(engine, threads, rng):
    """Each thread keeps the zero-bordered copy of up to 8 geometries; 11 geometries (same
    channels, pads 0-2 on 6-8 pixel planes) in turn, twice, evict and rebuild them."""
    geoms = [ConvGeometry(3, h, w, 3, 3, ph, pw) for h, w, ph, pw in
             [(6, 6, 0, 0), (6, 6, 1, 1), (6, 6, 2, 2), (6, 6, 1, 0), (6, 6, 0, 1), (7, 6, 1, 1),
              (6, 7, 1, 1), (8, 8, 1, 1), (8, 8, 2, 1), (8, 6, 1, 2), (7, 7, 2, 2)]]
    for g in geoms + geoms[::-1]:
        x = rng.standard_normal((2, 3, g.H, g.W)).astype(np.float32)
        w4 = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
        got = ops.conv_forward_nchw(x, g, w4.reshape(5, -1))
        want = direct_forward(x.astype(np.float64), g, w4.astype(np.float64), 1, None)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", [c for c in F32_CASES if c[2] == 1])
@pytest.mark.parametrize("removed", [(0.5, 0.4), (0.9, 0.0), (0.0, 0.9)],
                         ids=["rows+cols", "most-rows", "most-cols"])
def test_float32_forward_compact_matches_direct(engine, threads, rng, case, removed):
    g, M, _, x, w4, bias = f32_case(rng, case, 2)
    w2 = w4.reshape(M, -1)
    w2[rng.permutation(M)[:round(removed[0] * M)]] = 0
    w2[:, rng.permutation(g.rows)[:round(removed[1] * g.rows)]] = 0
    got = ops.conv_forward_nchw(x, g, ops.CompactWeights(w2), bias=bias)
    want = direct_forward(x.astype(np.float64), g, w4.astype(np.float64), 1,
                          bias.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    removed_rows = ~(w2 != 0).any(axis=1)
    assert (got[:, removed_rows] == bias[removed_rows, None]).all()


def test_argument_errors(engine):
    g = ConvGeometry(4, 5, 5, 3, 3)
    x, w = np.zeros((2, 4, 5, 5)), np.zeros((6, 36))
    with pytest.raises(KernelError, match=r"^conv_forward_nchw: group = 3; expected a divisor "
                                          r"of the 4 channels"):
        ops.conv_forward_nchw(x, g, w, group=3)
    with pytest.raises(KernelError, match=r"^conv_forward_nchw: w has shape \(6, 36\); expected "
                                          r"\(M, C/group\*kh\*kw\) = \(a multiple of 2, 18\)"):
        ops.conv_forward_nchw(x, g, w, group=2)
    with pytest.raises(TypeError, match=r"^conv_forward_nchw: w has dtype float32 but x has "
                                        r"float64"):
        ops.conv_forward_nchw(x, g, w.astype(np.float32))
    with pytest.raises(KernelError, match=r"^conv_forward_nchw: bias has shape \(5,\)"):
        ops.conv_forward_nchw(x, g, w, bias=np.zeros(5))
    with pytest.raises(KernelError, match=r"^conv_forward_nchw: out has shape \(2, 6, 10\); "
                                          r"expected \(2, 6, 9\)"):
        ops.conv_forward_nchw(x, g, w, out=np.zeros((2, 6, 10)))
    with pytest.raises(KernelError, match=r"^conv_backward: dy has shape \(2, 6, 4\); expected "
                                          r"\(N, M, oh\*ow\) = \(2, 6, 9\)"):
        ops.conv_backward(x, g, w, np.zeros((2, 6, 4)), np.zeros((6, 36)))
    with pytest.raises(KernelError, match=r"^conv_backward: dw has shape \(36, 6\); expected "
                                          r"\(6, 36\)"):
        ops.conv_backward(x, g, w, np.zeros((2, 6, 9)), np.zeros((36, 6)))
    with pytest.raises(KernelError, match=r"^conv_backward: dx has shape \(2, 4, 5\)"):
        ops.conv_backward(x, g, w, np.zeros((2, 6, 9)), np.zeros((6, 36)),
                          dx=np.zeros((2, 4, 5)))


@pytest.fixture
def k():
    """The compiled kernels module, or skip."""
    kernels = ops.native.kernels()
    if kernels is None:
        pytest.skip("minicaffe._kernels not built")
    return kernels


GEOM = (4, 5, 5, 3, 3, 0, 0, 1, 1, 1, 1)  # (C, H, W, kh, kw, ph, pw, sh, sw, dh, dw): 3x3 out


@pytest.mark.native
def test_kernel_checks_its_own_arguments(k):
    """The compiled entry points validate on their own, for callers other than ops."""
    geom = GEOM
    x, w, y = np.zeros((2, 4, 5, 5)), np.zeros((6, 36)), np.zeros((2, 6, 9))
    with pytest.raises(ValueError, match=r"^conv_forward_nchw: group = 3; expected a divisor"):
        k.conv_forward_nchw(x, geom, 3, w, None, y)
    with pytest.raises(ValueError, match=r"^conv_forward_nchw: y has shape \(2, 6, 8\)"):
        k.conv_forward_nchw(x, geom, 1, w, None, np.zeros((2, 6, 8)))
    with pytest.raises(ValueError, match=r"must be C-contiguous"):
        k.conv_forward_nchw(np.zeros((2, 4, 5, 10))[..., ::2], geom, 1, w, None, y)
    with pytest.raises(TypeError, match=r"^conv_backward: dy has dtype float32; expected "
                                        r"float64"):
        k.conv_backward(x, geom, 1, w, y.astype(np.float32), np.zeros((6, 36)), None, None)
    with pytest.raises(ValueError, match=r"^conv_backward: dw is read-only"):
        ro = np.zeros((6, 36))
        ro.flags.writeable = False
        k.conv_backward(x, geom, 1, w, y, ro, None, None)
    with pytest.raises(ValueError, match=r"^conv_backward: block_bytes = 0"):
        k.conv_backward(x, geom, 1, w, y, np.zeros((6, 36)), None, None, 0)


@pytest.mark.parametrize("case", [c for c in CASES if c[2] == 1])
@pytest.mark.parametrize("n", [1, 2, 7])
@pytest.mark.parametrize("block_bytes", [1, 1 << 20], ids=["chunk1", "chunkmany"])
@pytest.mark.parametrize("removed", [(0.0, 0.0), (0.5, 0.4), (1.0, 0.0), (0.0, 1.0)],
                         ids=["none", "rows+cols", "all-rows", "all-cols"])
def test_forward_compact_matches_direct(engine, threads, rng, case, n, block_bytes, removed):
    g, M, _, x, w4 = random_case(rng, case, n)
    w2 = w4.reshape(M, -1)
    w2[rng.permutation(M)[:round(removed[0] * M)]] = 0
    w2[:, rng.permutation(g.rows)[:round(removed[1] * g.rows)]] = 0
    bias = rng.standard_normal(M)
    out = np.full((n, M, g.cols), np.nan)
    got = ops.conv_forward_nchw(x, g, ops.CompactWeights(w2), bias=bias, out=out,
                                block_bytes=block_bytes)
    assert got is out
    want = direct_forward(x, g, w4, 1, bias)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    removed_rows = ~(w2 != 0).any(axis=1)
    assert (got[:, removed_rows] == bias[removed_rows, None]).all()  # exactly the bias


def test_forward_compact_errors(engine, rng):
    g = ConvGeometry(4, 5, 5, 3, 3)
    x = np.zeros((2, 4, 5, 5))
    with pytest.raises(KernelError, match=r"^conv_forward_nchw: CompactWeights hold one group"):
        ops.conv_forward_nchw(x, g, ops.CompactWeights(np.ones((6, 18))), group=2)
    with pytest.raises(KernelError, match=r"^conv_forward_nchw: geom lowers to 36 rows"):
        ops.conv_forward_nchw(x, g, ops.CompactWeights(np.ones((6, 18))))
    with pytest.raises(TypeError, match=r"^conv_forward_nchw: weights has dtype float32"):
        ops.conv_forward_nchw(x, g, ops.CompactWeights(np.ones((6, 36), np.float32)))


@pytest.mark.native
def test_kernel_checks_compact_arguments(k):
    geom = GEOM
    x, y = np.zeros((2, 4, 5, 5)), np.zeros((2, 6, 9))
    a = np.zeros((4, 3))
    rows, cols = np.array([0, 2, 5]), np.array([1, 7, 30])
    with pytest.raises(ValueError, match=r"rows and cols come together"):
        k.conv_forward_nchw(x, geom, 1, a, None, y, 1 << 20, rows, None)
    with pytest.raises(ValueError, match=r"^f64_conv_forward_nchw: rows\[1\] = 9"):
        k.conv_forward_nchw(x, geom, 1, a, None, y, 1 << 20, np.array([0, 9, 5]), cols)
    with pytest.raises(ValueError, match=r"^f64_conv_forward_nchw: cols is not strictly "
                                         r"increasing"):
        k.conv_forward_nchw(x, geom, 1, a, None, y, 1 << 20, rows, np.array([1, 1, 30]))
    with pytest.raises(ValueError, match=r"cols has 2 entries but w has 3 columns"):
        k.conv_forward_nchw(x, geom, 1, a, None, y, 1 << 20, rows, np.array([1, 7]))
    with pytest.raises(ValueError, match=r"compacted weights take group = 1, not 2"):
        k.conv_forward_nchw(x, geom, 2, a, None, y, 1 << 20, rows, cols)
