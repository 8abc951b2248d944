// MAX and AVE pooling with Caffe's rules. MAX: windows clipped to the image, the first maximum
// in row-major window order wins, its index h*W + w in the plane is kept for backward.
#include <algorithm>
#include <limits>
#include <vector>

#include "isa.h"

MC_ISA_BEGIN

namespace {

// Stride-phase layout (the NumPy twin's, minicaffe/ops/pooling.py PhasePlan): the padded
// plane is split into sh*sw phase planes of Hh x Wh, phase (a, b) holding padded pixel
// (a + u*sh, b + v*sw) at u*Wh + v, -inf outside the image. Kernel tap (i, j) of every output,
// laid out on an oh x Wh grid (columns >= ow are scratch), is then ONE contiguous run of
// phase (i % sh, j % sw) from (i / sh)*Wh + j / sw. Per-window loops, strided loads (gathers)
// and short clipped rows all ran slower than NumPy; runs of oh*Wh values vectorise fully.
struct Layout {
  int64_t Hh, Wh, L, plane;  // phase plane Hh x Wh plus one spare row; L = oh*Wh grid
  std::vector<int32_t> seed;  // per grid cell: first image pixel of its window, or -1
  std::vector<int32_t> base;  // per grid cell: pixel index of tap (0, 0), maybe outside
};

Layout layout(const PoolGeom& g) {
  Layout l;
  l.Hh = g.oh + (g.kh - 1) / g.sh;
  l.Wh = g.ow + (g.kw - 1) / g.sw;
  l.L = g.oh * l.Wh;
  l.plane = l.Hh * l.Wh + l.Wh;  // the last taps of scratch columns overhang by < one row
  l.seed.assign(l.L, -1);
  l.base.assign(l.L, 0);
  for (int64_t yo = 0; yo < g.oh; ++yo)
    for (int64_t xo = 0; xo < l.Wh; ++xo) {
      const int64_t h = yo * g.sh - g.ph, w = xo * g.sw - g.pw;
      l.base[yo * l.Wh + xo] = int32_t(h * g.W + w);
      const int64_t h0 = std::max<int64_t>(h, 0), w0 = std::max<int64_t>(w, 0);
      if (xo < g.ow && h0 < g.H && w0 < g.W) l.seed[yo * l.Wh + xo] = int32_t(h0 * g.W + w0);
    }
  return l;
}

// Phase planes of one input plane, `pad` outside the image, phase (a, b) at
// planes + (a*sw + b)*stride (stride l.plane for one plane; a block of planes interleaves its
// planes' phases, see block_planes); SW > 0 makes the column stride a constant.
template <typename T, int64_t SW>
void split_phases(const T* __restrict__ x, const PoolGeom& g, const Layout& l, T pad,
                  T* __restrict__ planes, int64_t stride) {
  const int64_t sw = SW > 0 ? SW : g.sw;
  for (int64_t a = 0; a < g.sh; ++a)
    for (int64_t b = 0; b < sw; ++b) {
      T* __restrict__ dst = planes + (a * sw + b) * stride;
      // v with input column v*sw + b - pw inside [0, W)
      const int64_t lo = std::min(l.Wh, g.pw > b ? (g.pw - b + sw - 1) / sw : 0);
      const int64_t hi = std::max(lo, std::min(l.Wh, (g.W + g.pw - b + sw - 1) / sw));
      for (int64_t u = 0; u < l.Hh; ++u, dst += l.Wh) {
        const int64_t h = a + u * g.sh - g.ph;
        if (h < 0 || h >= g.H) {
          std::fill(dst, dst + l.Wh, pad);
          continue;
        }
        const T* __restrict__ src = x + h * g.W + b - g.pw;
        for (int64_t v = 0; v < lo; ++v) dst[v] = pad;
        for (int64_t v = lo; v < hi; ++v) dst[v] = src[v * sw];
        for (int64_t v = hi; v < l.Wh; ++v) dst[v] = pad;
      }
      std::fill(dst, dst + l.Wh, pad);  // spare row
    }
}

// Strides 1 and 2 (nearly every net) as constants: plain and even/odd copies.
template <typename T>
void split(const T* x, const PoolGeom& g, const Layout& l, T pad, T* planes, int64_t stride) {
  if (g.sw == 1) split_phases<T, 1>(x, g, l, pad, planes, stride);
  else if (g.sw == 2) split_phases<T, 2>(x, g, l, pad, planes, stride);
  else split_phases<T, 0>(x, g, l, pad, planes, stride);
}

// Planes per block of the forward kernels. Small planes (the last pooling layers of most nets,
// 8 x 8 and less) cost more in the per-plane calls than in their windows, so B planes are
// split side by side: phase (a, b) of plane q at (a*sw + b)*B*l.plane + q*l.plane. Since a
// tap's run (l.L values from its offset) ends inside its plane's l.plane values, one run of
// (B - 1)*l.plane + l.L values does that tap for the B planes at once (the values between
// two planes' grids are scratch). B: phase scratch within 4 KB (measured: 8 x 8 planes gain
// about 25%; a larger block pushes the runs of 32 x 32 planes out of L1 and loses), at most
// 64 planes.
template <typename T>
int64_t block_planes(const PoolGeom& g, const Layout& l, int64_t planes) {
  const int64_t per = g.sh * g.sw * l.plane * int64_t(sizeof(T));
  return std::max<int64_t>(1, std::min<int64_t>({planes, 64, (4 << 10) / per}));
}

// Inverse of split_phases for a gradient: image pixels of the phase planes back into dx
// (pixels in no window, e.g. FLOOR rounding, are 0).
template <typename T>
void merge_phases(const T* __restrict__ planes, const PoolGeom& g, const Layout& l,
                  T* __restrict__ dx) {
  const int64_t sh = g.sh, sw = g.sw;
  std::fill(dx, dx + g.H * g.W, T(0));
  for (int64_t a = 0; a < sh; ++a)
    for (int64_t b = 0; b < sw; ++b) {
      const int64_t lo = std::min(l.Wh, g.pw > b ? (g.pw - b + sw - 1) / sw : 0);
      const int64_t hi = std::max(lo, std::min(l.Wh, (g.W + g.pw - b + sw - 1) / sw));
      const T* __restrict__ src = planes + (a * sw + b) * l.plane;
      for (int64_t u = 0; u < l.Hh; ++u, src += l.Wh) {
        const int64_t h = a + u * sh - g.ph;
        if (h < 0 || h >= g.H) continue;
        T* __restrict__ dst = dx + h * g.W + b - g.pw;
        for (int64_t v = lo; v < hi; ++v) dst[v * sw] = src[v];
      }
    }
}

// dst[0..L) += src[0..L) (noinline and simd: see take_max_tap).
template <typename T>
__attribute__((noinline)) void add_run(const T* __restrict__ src, int64_t L,
                                       T* __restrict__ dst) {
#pragma omp simd
  for (int64_t p = 0; p < L; ++p) dst[p] += src[p];
}

// Start of tap (i, j) in the phase planes (see Layout; `stride` as in split_phases).
inline int64_t tap_offset(const PoolGeom& g, const Layout& l, int64_t i, int64_t j,
                          int64_t stride) {
  return ((i % g.sh) * g.sw + j % g.sw) * stride + (i / g.sh) * l.Wh + j / g.sw;
}

// 1 / Caffe's AVE window size on the oh x Wh grid; 0 on scratch columns and for windows
// wholly past the image (Caffe's ceil rule, stride > kernel, no pad: no pixel, no gradient).
template <typename T>
std::vector<T> ave_inverse(const PoolGeom& g, const Layout& l) {
  std::vector<T> inv(l.L, T(0));
  for (int64_t yo = 0; yo < g.oh; ++yo)
    for (int64_t xo = 0; xo < g.ow; ++xo) {
      const int64_t hs = yo * g.sh - g.ph, ws = xo * g.sw - g.pw;
      if (hs >= g.H || ws >= g.W) continue;
      const int64_t he = std::min(hs + g.kh, g.H + g.ph), we = std::min(ws + g.kw, g.W + g.pw);
      inv[yo * l.Wh + xo] = T(1.0 / double((he - hs) * (we - ws)));
    }
  return inv;
}

// best/arg over the grid updated with one tap: a strictly larger value wins. Unconditional
// stores and an integer mask (written as `take ? a : b` GCC kept conditional stores, scalar).
// noinline: inlined into the tap loops, GCC's unroll-and-jam fused two taps into one scalar
// loop; either way it ran 2-3x slower than NumPy.
template <typename T>
__attribute__((noinline)) void take_max_tap(const T* __restrict__ src,
                                            const int32_t* __restrict__ base, int32_t add,
                                            int64_t L, T* __restrict__ best,
                                            int32_t* __restrict__ arg) {
#pragma omp simd
  for (int64_t p = 0; p < L; ++p) {
    const T v = src[p], b = best[p];
    const int32_t take = -int32_t(v > b);  // all ones when v wins
    best[p] = v > b ? v : b;
    arg[p] = (arg[p] & ~take) | ((base[p] + add) & take);
  }
}

// best over the grid updated with one tap, values only (an inference forward keeps no argmax):
// the same strictly-larger rule, so the values equal take_max_tap's bit for bit.
template <typename T>
__attribute__((noinline)) void take_max_value(const T* __restrict__ src, int64_t L,
                                              T* __restrict__ best) {
#pragma omp simd
  for (int64_t p = 0; p < L; ++p) {
    const T v = src[p], b = best[p];
    best[p] = v > b ? v : b;
  }
}

// One block of B planes. Each output starts from its window's first image pixel (row-major, clipped), or
// -FLT_MAX (Caffe's starting value, finite) and -1 when the window lies wholly past the image
// (Caffe's ceil rule with stride > kernel and no pad; backward skips -1). Every tap in
// row-major window order then replaces it only when strictly larger: ties keep the earlier
// pixel and -inf padding never wins.
template <typename T, bool MASK>
void max_pool_block(const T* __restrict__ x, int64_t B, const PoolGeom& g, const Layout& l,
                    const int32_t* __restrict__ base, const T* __restrict__ planes,
                    T* __restrict__ best, int32_t* __restrict__ arg, T* __restrict__ y,
                    int32_t* __restrict__ mask) {
  const int32_t* __restrict__ seed = l.seed.data();
  const int64_t L = l.L, in = g.H * g.W, out = g.oh * g.ow;
  const int64_t run = (B - 1) * l.plane + L, stride = B * l.plane;
  for (int64_t q = 0; q < B; ++q) {
    const T* __restrict__ xq = x + q * in;
    T* __restrict__ bq = best + q * l.plane;
    for (int64_t p = 0; p < L; ++p)
      bq[p] = seed[p] >= 0 ? xq[seed[p]] : T(-std::numeric_limits<float>::max());
    if (MASK) std::copy(seed, seed + L, arg + q * l.plane);
  }
  for (int64_t i = 0; i < g.kh; ++i)
    for (int64_t j = 0; j < g.kw; ++j) {
      const T* __restrict__ src = planes + tap_offset(g, l, i, j, stride);
      if (MASK) take_max_tap(src, base, int32_t(i * g.W + j), run, best, arg);
      else take_max_value(src, run, best);
    }
  for (int64_t q = 0; q < B; ++q)
    for (int64_t yo = 0; yo < g.oh; ++yo)
      for (int64_t xo = 0; xo < g.ow; ++xo) {
        y[q * out + yo * g.ow + xo] = best[q * l.plane + yo * l.Wh + xo];
        if (MASK) mask[q * out + yo * g.ow + xo] = arg[q * l.plane + yo * l.Wh + xo];
      }
}

template <typename T, bool MASK>
void max_pool_forward_t(const T* x, int64_t planes, const PoolGeom& g, T* y, int32_t* mask) {
  const int64_t in = g.H * g.W, out = g.oh * g.ow;
  const Layout l = layout(g);
  const int64_t B = block_planes<T>(g, l, planes);
  // Layout::base repeated for each plane of a block (scratch values between grids: 0).
  std::vector<int32_t> base(MASK ? B * l.plane : 0, 0);
  for (int64_t q = 0; MASK && q < B; ++q)
    std::copy(l.base.begin(), l.base.end(), base.begin() + q * l.plane);
  for_each_share(planes, planes * out * g.kh * g.kw > (1 << 15), [&](int64_t lo, int64_t hi) {
    // Per-thread scratch, reused for each of its blocks (a few KB: stays in L1/L2).
    std::vector<T> phase(g.sh * g.sw * B * l.plane), best(B * l.plane);
    std::vector<int32_t> arg(MASK ? B * l.plane : 0);
    for (int64_t p = lo; p < hi; p += B) {
      const int64_t b = std::min(B, hi - p);
      for (int64_t q = 0; q < b; ++q)
        split(x + (p + q) * in, g, l, -std::numeric_limits<T>::infinity(),
              phase.data() + q * l.plane, b * l.plane);
      max_pool_block<T, MASK>(x + p * in, b, g, l, base.data(), phase.data(), best.data(),
                              arg.data(), y + p * out, MASK ? mask + p * out : nullptr);
    }
  });
}

}  // namespace

// mask nullptr: the values only.
template <typename T>
void max_pool_forward(const T* x, int64_t planes, const PoolGeom& g, T* y, int32_t* mask) {
  if (mask) max_pool_forward_t<T, true>(x, planes, g, y, mask);
  else max_pool_forward_t<T, false>(x, planes, g, y, nullptr);
}

template <typename T>
void max_pool_backward(const T* dy, const int32_t* mask, int64_t planes, const PoolGeom& g,
                       T* dx) {
  const int64_t in = g.H * g.W, out = g.oh * g.ow;
  // Each plane is scattered by one thread: overlapping windows add to the same pixel safely.
#pragma omp parallel for schedule(static) if (planes * (in + out) > (1 << 15))
  for (int64_t p = 0; p < planes; ++p) {
    T* d = dx + p * in;
    const T* g_out = dy + p * out;
    const int32_t* m = mask + p * out;
    std::fill(d, d + in, T(0));
    for (int64_t t = 0; t < out; ++t)
      if (m[t] >= 0) d[m[t]] += g_out[t];
  }
}

// AVE on the MAX layout (phase planes padded with 0): each tap adds one contiguous run to the
// oh x Wh grid, then one multiply by 1 / Caffe's window size. Backward runs it in reverse:
// dy / size added along every tap's run of the (zeroed) phase planes, then merged into dx.
template <typename T>
void ave_pool_forward(const T* x, int64_t planes, const PoolGeom& g, T* y) {
  const int64_t in = g.H * g.W, out = g.oh * g.ow;
  const Layout l = layout(g);
  const std::vector<T> inv = ave_inverse<T>(g, l);
  const int64_t B = block_planes<T>(g, l, planes);
  for_each_share(planes, planes * out * g.kh * g.kw > (1 << 15), [&](int64_t lo, int64_t hi) {
    std::vector<T> phase(g.sh * g.sw * B * l.plane), acc(B * l.plane);
    for (int64_t p = lo; p < hi; p += B) {
      const int64_t b = std::min(B, hi - p), stride = b * l.plane, run = stride - l.plane + l.L;
      for (int64_t q = 0; q < b; ++q)
        split(x + (p + q) * in, g, l, T(0), phase.data() + q * l.plane, stride);
      std::fill(acc.begin(), acc.begin() + run, T(0));
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j)
          add_run(phase.data() + tap_offset(g, l, i, j, stride), run, acc.data());
      for (int64_t q = 0; q < b; ++q) {
        T* yp = y + (p + q) * out;
        const T* aq = acc.data() + q * l.plane;
        for (int64_t yo = 0; yo < g.oh; ++yo)
          for (int64_t xo = 0; xo < g.ow; ++xo)
            yp[yo * g.ow + xo] = aq[yo * l.Wh + xo] * inv[yo * l.Wh + xo];
      }
    }
  });
}

template <typename T>
void ave_pool_backward(const T* dy, int64_t planes, const PoolGeom& g, T* dx) {
  const int64_t in = g.H * g.W, out = g.oh * g.ow;
  const Layout l = layout(g);
  const std::vector<T> inv = ave_inverse<T>(g, l);
#pragma omp parallel if (planes * out * g.kh * g.kw > (1 << 15))
  {
    std::vector<T> phase(g.sh * g.sw * l.plane), grad(l.L, T(0));  // scratch columns stay 0
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
      const T* gp = dy + p * out;
      for (int64_t yo = 0; yo < g.oh; ++yo)
        for (int64_t xo = 0; xo < g.ow; ++xo)
          grad[yo * l.Wh + xo] = gp[yo * g.ow + xo] * inv[yo * l.Wh + xo];
      std::fill(phase.begin(), phase.end(), T(0));
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j)
          add_run(grad.data(), l.L, phase.data() + tap_offset(g, l, i, j, l.plane));
      merge_phases(phase.data(), g, l, dx + p * in);
    }
  }
}

template void ave_pool_forward<float>(const float*, int64_t, const PoolGeom&, float*);
template void ave_pool_forward<double>(const double*, int64_t, const PoolGeom&, double*);
template void ave_pool_backward<float>(const float*, int64_t, const PoolGeom&, float*);
template void ave_pool_backward<double>(const double*, int64_t, const PoolGeom&, double*);
template void max_pool_forward<float>(const float*, int64_t, const PoolGeom&, float*, int32_t*);
template void max_pool_forward<double>(const double*, int64_t, const PoolGeom&, double*,
                                       int32_t*);
template void max_pool_backward<float>(const float*, const int32_t*, int64_t, const PoolGeom&,
                                       float*);
template void max_pool_backward<double>(const double*, const int32_t*, int64_t, const PoolGeom&,
                                        double*);

MC_ISA_END
