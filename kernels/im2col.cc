// Lowering (im2col), kept-row lowering and its adjoint (col2im), Caffe's layout:
// lowered row r = c*kh*kw + i*kw + j, column n*oh*ow + y*ow + x.
#include <algorithm>
#include <cstring>
#include <vector>

#include "isa.h"

MC_ISA_BEGIN
namespace {

// Output columns xo whose input column xo*sw + off lies inside [0, W): [lo, hi).
inline void valid_range(int64_t off, int64_t sw, int64_t W, int64_t ow, int64_t* lo, int64_t* hi) {
  int64_t l = off >= 0 ? 0 : (-off + sw - 1) / sw;
  int64_t h = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;
  l = std::min(l, ow);
  h = std::max(std::min(h, ow), l);
  *lo = l;
  *hi = h;
}

}  // namespace

// Where one lowered row r = (c, i, j) reads: plane c shifted by (yoff, xoff); output rows
// [ylo, yhi) and columns [xlo, xhi) fall inside the input, the rest is padding.
struct RowPlan {
  int64_t c, yoff, xoff, ylo, yhi, xlo, xhi;
};

// Plans of the listed lowered rows. Rows sharing a kernel tap (i, j) share everything but c,
// so the divisions are done once per tap and once per row, not six times per row (they were
// most of the cost of lowering a 13x13 image).
std::vector<RowPlan> plan_rows(const Geom& g, const int64_t* rows, int64_t n_rows) {
  const int64_t oh = g.oh(), ow = g.ow(), khw = g.kh * g.kw;
  std::vector<RowPlan> taps(khw);
  for (int64_t tap = 0; tap < khw; ++tap) {
    RowPlan& p = taps[tap];
    p.c = 0;
    p.yoff = (tap / g.kw) * g.dh - g.ph;
    p.xoff = (tap % g.kw) * g.dw - g.pw;
    valid_range(p.yoff, g.sh, g.H, oh, &p.ylo, &p.yhi);
    valid_range(p.xoff, g.sw, g.W, ow, &p.xlo, &p.xhi);
  }
  std::vector<RowPlan> plan(n_rows);
  // (c, tap) of row t counted forward, not divided: the lists increase, so c only grows (a
  // division per row was a tenth of lowering conv4's 264 kept rows).
  int64_t c = 0, first = 0;  // first: the lowered row (c, 0, 0)
  for (int64_t t = 0; t < n_rows; ++t) {
    const int64_t r = rows ? rows[t] : t;
    if (r < first) {  // a decreasing list (callers reject it; the plan stays right anyway)
      c = r / khw;
      first = c * khw;
    }
    for (; r >= first + khw; first += khw) ++c;
    plan[t] = taps[r - first];
    plan[t].c = c;
  }
  return plan;
}

template <int S, typename T>
inline void copy_strided(T* d, const T* src, int64_t lo, int64_t hi) {
  for (int64_t xo = lo; xo < hi; ++xo) d[xo] = src[xo * S];
}

// One lowered row of one image: dst[oh*ow] from its input plane.
template <typename T>
inline void lower_row(const RowPlan& p, const T* plane, const Geom& g, int64_t ow, bool same,
                      T* dst) {
  const int64_t P = g.oh() * ow;
  std::fill(dst, dst + p.ylo * ow, T(0));
  std::fill(dst + p.yhi * ow, dst + P, T(0));
  if (same) {
    const int64_t base = (p.ylo + p.yoff) * g.W + p.xoff, count = (p.yhi - p.ylo) * ow;
    const int64_t e_lo = std::min(count, std::max<int64_t>(0, -base));
    const int64_t e_hi = std::max(e_lo, std::min(count, g.H * g.W - base));
    T* d = dst + p.ylo * ow;
    std::fill(d, d + e_lo, T(0));
    std::memcpy(d + e_lo, plane + base + e_lo, (e_hi - e_lo) * sizeof(T));
    std::fill(d + e_hi, d + count, T(0));
    if (p.xlo > 0 || p.xhi < ow) {
      for (int64_t y = p.ylo; y < p.yhi; ++y) {
        T* row = dst + y * ow;
        for (int64_t xo = 0; xo < p.xlo; ++xo) row[xo] = T(0);
        for (int64_t xo = p.xhi; xo < ow; ++xo) row[xo] = T(0);
      }
    }
    return;
  }
  // General case; small images make per-row overhead matter: plain loops the compiler
  // vectorises, no library call per output row.
  for (int64_t y = p.ylo; y < p.yhi; ++y) {
    T* d = dst + y * ow;
    const T* src = plane + (y * g.sh + p.yoff) * g.W + p.xoff;
    for (int64_t xo = 0; xo < p.xlo; ++xo) d[xo] = T(0);
    switch (g.sw) {  // a stride known at compile time vectorises (shuffles, not gathers)
      case 1: copy_strided<1>(d, src, p.xlo, p.xhi); break;
      case 2: copy_strided<2>(d, src, p.xlo, p.xhi); break;
      case 4: copy_strided<4>(d, src, p.xlo, p.xhi); break;
      default:
        for (int64_t xo = p.xlo; xo < p.xhi; ++xo) d[xo] = src[xo * g.sw];
    }
    for (int64_t xo = p.xhi; xo < ow; ++xo) d[xo] = T(0);
  }
}

#if MC_ISA_LEVEL >= 1
// Short output rows at stride 1 (13x13 AlexNet conv3-5, 27x27 conv2, CIFAR-10's 32x32 and
// 8x8, LeNet's 24x24): each output row is one or two masked stores. The load masks drop the
// padding columns, so nothing is fixed up afterwards; the contiguous-copy path below spent most
// of its time on per-row calls and fix-ups at these sizes. ShortRow<T>: one vector of T with
// masked load/store; range(lo, hi) is the mask of lanes [lo, hi), clipped to the vector.
template <typename T>
struct ShortRow;

#if MC_ISA_LEVEL == 2
template <>
struct ShortRow<float> {
  static constexpr int64_t lanes = 16;
  using Mask = __mmask16;
  static Mask range(int64_t lo, int64_t hi) {
    lo = std::max<int64_t>(lo, 0);
    hi = std::min<int64_t>(hi, lanes);
    return hi <= lo ? Mask(0) : Mask(((1u << hi) - 1) & ~((1u << lo) - 1));
  }
  static void copy(const float* src, Mask load, float* dst, Mask store) {
    _mm512_mask_storeu_ps(dst, store, _mm512_maskz_loadu_ps(load, src));
  }
  static void zero(float* dst, Mask store) {
    _mm512_mask_storeu_ps(dst, store, _mm512_setzero_ps());
  }
  static constexpr bool whole_stores = false;  // AVX-512's masked stores are as fast
  static void copy_whole(const float* src, Mask load, float* dst) { copy(src, load, dst, 0xffff); }
  static void zero_whole(float* dst) { zero(dst, 0xffff); }
};

template <>
struct ShortRow<double> {
  static constexpr int64_t lanes = 8;
  using Mask = __mmask8;
  static Mask range(int64_t lo, int64_t hi) {
    lo = std::max<int64_t>(lo, 0);
    hi = std::min<int64_t>(hi, lanes);
    return hi <= lo ? Mask(0) : Mask(((1u << hi) - 1) & ~((1u << lo) - 1));
  }
  static void copy(const double* src, Mask load, double* dst, Mask store) {
    _mm512_mask_storeu_pd(dst, store, _mm512_maskz_loadu_pd(load, src));
  }
  static void zero(double* dst, Mask store) {
    _mm512_mask_storeu_pd(dst, store, _mm512_setzero_pd());
  }
  static constexpr bool whole_stores = false;
  static void copy_whole(const double* src, Mask load, double* dst) { copy(src, load, dst, 0xff); }
  static void zero_whole(double* dst) { zero(dst, 0xff); }
};
#else
// AVX2: vmaskmov, the mask a vector whose lanes' sign bits select (8 floats, 4 doubles). As
// with AVX-512, masked-off lanes are neither read nor faulted on.
template <>
struct ShortRow<float> {
  static constexpr int64_t lanes = 8;
  using Mask = __m256i;
  static Mask range(int64_t lo, int64_t hi) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i l = _mm256_set1_epi32(int(std::clamp<int64_t>(lo, -1, lanes)));
    const __m256i h = _mm256_set1_epi32(int(std::clamp<int64_t>(hi, -1, lanes)));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(l, idx), _mm256_cmpgt_epi32(h, idx));
  }
  static void copy(const float* src, Mask load, float* dst, Mask store) {
    _mm256_maskstore_ps(dst, store, _mm256_maskload_ps(src, load));
  }
  static void zero(float* dst, Mask store) { _mm256_maskstore_ps(dst, store, _mm256_setzero_ps()); }
  static constexpr bool whole_stores = true;  // vmaskmov stores are slow on AMD cores
  static void copy_whole(const float* src, Mask load, float* dst) {
    _mm256_storeu_ps(dst, _mm256_maskload_ps(src, load));
  }
  static void zero_whole(float* dst) { _mm256_storeu_ps(dst, _mm256_setzero_ps()); }
};

template <>
struct ShortRow<double> {
  static constexpr int64_t lanes = 4;
  using Mask = __m256i;
  static Mask range(int64_t lo, int64_t hi) {
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    const __m256i l = _mm256_set1_epi64x(std::clamp<int64_t>(lo, -1, lanes));
    const __m256i h = _mm256_set1_epi64x(std::clamp<int64_t>(hi, -1, lanes));
    return _mm256_andnot_si256(_mm256_cmpgt_epi64(l, idx), _mm256_cmpgt_epi64(h, idx));
  }
  static void copy(const double* src, Mask load, double* dst, Mask store) {
    _mm256_maskstore_pd(dst, store, _mm256_maskload_pd(src, load));
  }
  static void zero(double* dst, Mask store) {
    _mm256_maskstore_pd(dst, store, _mm256_setzero_pd());
  }
  static constexpr bool whole_stores = true;
  static void copy_whole(const double* src, Mask load, double* dst) {
    _mm256_storeu_pd(dst, _mm256_maskload_pd(src, load));
  }
  static void zero_whole(double* dst) { _mm256_storeu_pd(dst, _mm256_setzero_pd()); }
};
#endif

// Up to two vectors per output row. Measured against the contiguous-copy path, lowering alone,
// one thread: 1.3-1.9x faster for two-vector rows (27x27, 32x32, 24x24) while the lowered block
// stays in cache, as the convolution forwards keep it; three or four vectors (40-56 wide) were
// 0.6-1.07x, and so are blocks far beyond the caches (below). (AVX-512 figures; AVX2: the
// short-row lowering in docs/KERNELS.md.)
constexpr int64_t kShortRowVectors = 2;
// Two-vector rows only up to this many lowered bytes per call: past the caches the old path's
// large memcpy (whose stores need no read for ownership) won, 0.91-1.0x at 10-19 MB.
constexpr int64_t kShortRowBlockBytes = int64_t(4) << 20;

// Output rows [0, end) of one lowered row as whole vectors, V per row: a store spills into the
// next row, which is written after it. Returns `end`; src is the input row of output row ylo.
template <int V, typename T>
inline int64_t whole_rows(int64_t end, int64_t ylo, int64_t yhi, const T* src, int64_t step,
                          int64_t ow, typename ShortRow<T>::Mask load0,
                          typename ShortRow<T>::Mask load1, T* dst) {
  using S = ShortRow<T>;
  constexpr int64_t L = S::lanes;
  int64_t y = 0;
  for (; y < std::min(ylo, end); ++y, dst += ow) {
    S::zero_whole(dst);
    if constexpr (V == 2) S::zero_whole(dst + L);
  }
  for (src += (y - ylo) * step; y < std::min(yhi, end); ++y, dst += ow, src += step) {
    S::copy_whole(src, load0, dst);
    if constexpr (V == 2) S::copy_whole(src + L, load1, dst + L);
  }
  for (; y < end; ++y, dst += ow) {
    S::zero_whole(dst);
    if constexpr (V == 2) S::zero_whole(dst + L);
  }
  return end;
}

// One lowered row of one image: output rows above and below the input are masked stores of
// zeros, the rest masked copies. Sizes come by value: a vector store may alias anything, so
// the compiler reloaded a Geom's fields after every store. Masked-off lanes are never read
// (the masked loads suppress their faults), so `src` may point up to pw elements before a
// plane's row. Where masked stores are slow (ShortRow::whole_stores: AVX2's vmaskmov on AMD
// cores, where this lowering ran at half the speed of the copy path), the rows whose whole
// vectors still end inside this image's oh*ow block are stored whole first.
template <typename T>
inline void lower_short_row(const RowPlan& p, const T* plane, int64_t W, int64_t sh, int64_t oh,
                            int64_t ow, T* dst) {
  using S = ShortRow<T>;
  constexpr int64_t L = S::lanes;
  const int64_t step = sh * W, ylo = p.ylo, yhi = p.yhi;
  const T* src = plane + ylo * step + p.yoff * W + p.xoff;
  const typename S::Mask store0 = S::range(0, ow), load0 = S::range(p.xlo, p.xhi);
  int64_t y = 0;
  if constexpr (S::whole_stores) {
    // row y's whole vectors end at y*ow + V*L, inside the block while that is <= oh*ow
    const int64_t V = ow <= L ? 1 : 2;
    const int64_t end = oh * ow >= V * L ? std::min(oh, (oh * ow - V * L) / ow + 1) : 0;
    y = V == 1 ? whole_rows<1>(end, ylo, yhi, src, step, ow, load0, load0, dst)
               : whole_rows<2>(end, ylo, yhi, src, step, ow, load0,
                               S::range(p.xlo - L, p.xhi - L), dst);
    dst += y * ow;
    if (y > ylo) src += (std::min(y, yhi) - ylo) * step;
  }
  if (ow <= L) {
    for (; y < ylo; ++y, dst += ow) S::zero(dst, store0);
    for (; y < yhi; ++y, dst += ow, src += step) S::copy(src, load0, dst, store0);
    for (; y < oh; ++y, dst += ow) S::zero(dst, store0);
    return;
  }
  const typename S::Mask load1 = S::range(p.xlo - L, p.xhi - L);
  const typename S::Mask store1 = S::range(0, ow - L);
  for (; y < ylo; ++y, dst += ow) {
    S::zero(dst, store0);
    S::zero(dst + L, store1);
  }
  for (; y < yhi; ++y, dst += ow, src += step) {
    S::copy(src, load0, dst, store0);
    S::copy(src + L, load1, dst + L, store1);
  }
  for (; y < oh; ++y, dst += ow) {
    S::zero(dst, store0);
    S::zero(dst + L, store1);
  }
}
#else
template <typename T>
struct ShortRow {
  static constexpr int64_t lanes = 0;
};
constexpr int64_t kShortRowVectors = 0;
constexpr int64_t kShortRowBlockBytes = 0;

template <typename T>
void lower_short_row(const RowPlan&, const T*, int64_t, int64_t, int64_t, int64_t, T*) {}
#endif

template <typename T>
void im2col_rows(const T* x, int64_t N, const Geom& g, const int64_t* rows, int64_t n_rows,
                 T* cols, bool parallel) {
  const int64_t oh = g.oh(), ow = g.ow(), P = oh * ow, ncols = N * P, plane = g.H * g.W;
  const std::vector<RowPlan> plan = plan_rows(g, rows, n_rows);
  const int64_t L = ShortRow<T>::lanes, bytes = n_rows * ncols * int64_t(sizeof(T));
  const bool short_rows =
      g.sw == 1 && (ow <= L || (ow <= kShortRowVectors * L && bytes <= kShortRowBlockBytes));
  // "Same" convolutions with rows longer than the masked path takes: output and input rows
  // have equal length, so the valid rows of a lowered row are one contiguous shifted copy of
  // the plane; only the x-padding columns, which pick up neighbouring values, are cleared
  // afterwards.
  const bool same = g.sh == 1 && g.sw == 1 && ow == g.W;
  // One task per (kept row, image): it reads one input plane and writes one contiguous run of
  // oh*ow lowered values, so work splits evenly and writes never share cache lines much.
  for_each_index(n_rows * N, parallel && n_rows * ncols > (1 << 15), [&](int64_t task) {
    const int64_t t = task / N, n = task % N;
    const T* src = x + (n * g.C + plan[t].c) * plane;
    T* dst = cols + t * ncols + n * P;
    if (short_rows) lower_short_row(plan[t], src, g.W, g.sh, oh, ow, dst);
    else lower_row(plan[t], src, g, ow, same, dst);
  });
}

template <typename T>
void col2im(const T* cols, int64_t N, const Geom& g, T* x, bool parallel) {
  const int64_t oh = g.oh(), ow = g.ow(), P = oh * ow, ncols = N * P;
  // One task per (image, channel) plane: only that channel's kh*kw lowered rows write to it,
  // so the scatter-add needs no atomics.
#pragma omp parallel for collapse(2) schedule(static) \
    if (parallel && N * g.C * g.H * g.W > (1 << 15))
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < g.C; ++c) {
      T* plane = x + (n * g.C + c) * g.H * g.W;
      std::fill(plane, plane + g.H * g.W, T(0));
      for (int64_t i = 0; i < g.kh; ++i) {
        for (int64_t j = 0; j < g.kw; ++j) {
          const T* src = cols + ((c * g.kh + i) * g.kw + j) * ncols + n * P;
          const int64_t off = j * g.dw - g.pw;
          int64_t lo, hi;
          valid_range(off, g.sw, g.W, ow, &lo, &hi);
          for (int64_t y = 0; y < oh; ++y) {
            const int64_t yy = y * g.sh - g.ph + i * g.dh;
            if (yy < 0 || yy >= g.H) continue;
            T* d = plane + yy * g.W + off;
            const T* s = src + y * ow;
            for (int64_t xo = lo; xo < hi; ++xo) d[xo * g.sw] += s[xo];
          }
        }
      }
    }
  }
}

template void im2col_rows<float>(const float*, int64_t, const Geom&, const int64_t*, int64_t,
                                 float*, bool);
template void im2col_rows<double>(const double*, int64_t, const Geom&, const int64_t*, int64_t,
                                  double*, bool);
template void col2im<float>(const float*, int64_t, const Geom&, float*, bool);
template void col2im<double>(const double*, int64_t, const Geom&, double*, bool);

MC_ISA_END
