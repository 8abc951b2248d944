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

#if MC_ISA_LEVEL >= 1
// Separable float32 forwards for horizontal strides 1 and 2: MAX without the argmax (an
// inference forward) and AVE. Each input row is reduced across its windows' columns into a
// row of ow values (vector loads at stride 1, even lanes of two loads at stride 2), then each
// output row is reduced down its window's rows. Per plane that is a few vector operations
// per input row where the phase layout above makes sh*sw strided copies and kh*kw passes
// (pool1 of CIFAR-10 quick, 32 x 32 planes, MAX 3/2: about 4x faster).
//
// Same results as the phase kernels, whose MAX starts from the window's first image pixel
// (its seed) and lets a later pixel in row-major order replace it only when strictly larger:
// so a NaN is the result only as the seed, ties keep the earlier pixel (+0 / -0). Here both
// passes fold with max(tap, acc) = `tap > acc ? tap : acc` from -inf (a NaN never wins, the
// padding never does, earlier pixels win ties in row-major order), and the seed, kept from the
// first pass, replaces the result where it is NaN. A window with no image pixel is -FLT_MAX.
// AVE sums each window row, then the rows, times Caffe's 1 / size: the same terms in another
// association, equal within float32 rounding.
#if MC_ISA_LEVEL == 2
using Vec = __m512;
constexpr int kVec = 16;
inline Vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline void vstore_first(float* p, Vec v, int n) {  // lanes [0, n)
  _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), v);
}
inline Vec vmax(Vec tap, Vec acc) { return _mm512_max_ps(tap, acc); }
inline Vec vset1(float v) { return _mm512_set1_ps(v); }
inline Vec nan_or(Vec seed, Vec acc) {  // seed where seed is NaN, else acc
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(seed, seed, _CMP_UNORD_Q), acc, seed);
}
inline Vec vadd(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec vmul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec vload_even(const float* p) { return load_even_lanes(p); }  // p[0], p[2], ..., p[30]
#else
using Vec = __m256;
constexpr int kVec = 8;
inline Vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline void vstore_first(float* p, Vec v, int n) {
  const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  _mm256_maskstore_ps(p, lanes, v);
}
inline Vec vmax(Vec tap, Vec acc) { return _mm256_max_ps(tap, acc); }
inline Vec vset1(float v) { return _mm256_set1_ps(v); }
inline Vec nan_or(Vec seed, Vec acc) {
  return _mm256_blendv_ps(acc, seed, _mm256_cmp_ps(seed, seed, _CMP_UNORD_Q));
}
inline Vec vadd(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec vmul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec vload_even(const float* p) { return load_even_lanes(p); }  // p[0], p[2], ..., p[14]
#endif

bool separable_applies(const PoolGeom& g) { return g.sw == 1 || g.sw == 2; }

#if MC_ISA_LEVEL == 2
// Lanes of `tap` whose bit is set in `bits`, `pad` in the others.
inline Vec vkeep(Vec tap, uint32_t bits, Vec pad) {
  return _mm512_mask_mov_ps(pad, __mmask16(bits), tap);
}
#else
inline Vec vkeep(Vec tap, uint32_t bits, Vec pad) {
  const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i on = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(bits)), lane), lane);
  return _mm256_blendv_ps(pad, tap, _mm256_castsi256_ps(on));
}
#endif

// Column stride SW (1 or 2).
//   Rows mode: each input row is copied into a buffer with its padding, its window rows
//   computed ow (rounded up to vectors) at a time.
//   Flat mode (no column padding and W == SW * ow: pooling 2/2 or 3/2 of even widths, nearly
//   every pooling layer): output q = h*ow + o of the whole plane reads input SW*q + j for tap
//   j, so a plane is one run of vectors with no copy and no per-row loop (8 x 8 planes: 32
//   window rows in two vectors, not eight); taps that fall past the end of their row (the ceil
//   rule's last window) are masked to the padding value by a per-lane table.
template <bool MAX, int SW>
void separable_pool(const float* x, int64_t planes, const PoolGeom& g, float* y) {
  const int64_t in = g.H * g.W, out = g.oh * g.ow;
  const int64_t owv = (g.ow + kVec - 1) / kVec * kVec;
  const bool flat = g.pw == 0 && g.W == SW * g.ow;
  const int64_t ld = flat ? g.ow : owv;  // row length of the window-row buffer
  const int64_t n_flat = g.H * g.ow;     // flat mode: window rows per plane
  const int64_t rb_len = std::max(g.pw + g.W, SW * owv + g.kw) + 2 * kVec;
  const float pad = MAX ? -std::numeric_limits<float>::infinity() : 0.f;
  const float empty = MAX ? -std::numeric_limits<float>::max() : 0.f;
  // Columns whose window has no image pixel (Caffe's ceil rule can start one past the image);
  // outputs [0, left) start in the left padding.
  std::vector<char> col_empty(g.ow);
  int64_t left = 0;
  bool any_col_empty = false;
  for (int64_t o = 0; o < g.ow; ++o) {
    col_empty[o] = o * SW - g.pw >= g.W;
    any_col_empty |= col_empty[o] != 0;
    if (o * SW < g.pw) left = o + 1;
  }
  // Flat mode: lane bits of tap j inside its row, for a vector starting at q0 with q0 % ow = r.
  std::vector<uint32_t> inside;
  std::vector<int64_t> residue;  // per vector of a plane: its first output's column, q0 % ow
  int64_t q_safe = 0;  // vectors from q0 >= q_safe could read past the plane: from a copy
  if (flat) {
    inside.assign(g.kw * g.ow, 0);
    for (int64_t j = 0; j < g.kw; ++j)
      for (int64_t r = 0; r < g.ow; ++r)
        for (int t = 0; t < kVec; ++t)
          if ((r + t) % g.ow * SW + j < g.W) inside[j * g.ow + r] |= 1u << t;
    // reads of the vector at q0: SW*q0 + j .. SW*q0 + j + SW*kVec - 1
    while (q_safe + kVec <= n_flat && SW * q_safe + g.kw - 1 + SW * kVec <= in) q_safe += kVec;
    for (int64_t q0 = 0; q0 < n_flat; q0 += kVec) residue.push_back(q0 % g.ow);
  }
  // AVE: 1 / Caffe's window size per output (0 for an empty window), rows padded to owv.
  std::vector<float> inv;
  if (!MAX) {
    inv.assign(g.oh * owv, 0.f);
    for (int64_t yo = 0; yo < g.oh; ++yo)
      for (int64_t xo = 0; xo < g.ow; ++xo) {
        const int64_t hs = yo * g.sh - g.ph, ws = xo * SW - g.pw;
        if (hs >= g.H || ws >= g.W) continue;
        const int64_t he = std::min(hs + g.kh, g.H + g.ph), we = std::min(ws + g.kw, g.W + g.pw);
        inv[yo * owv + xo] = float(1.0 / double((he - hs) * (we - ws)));
      }
  }
  auto load_taps = [](const float* base) { return SW == 1 ? vload(base) : vload_even(base); };
  for_each_share(planes, planes * out * g.kh * g.kw > (1 << 15), [&](int64_t lo, int64_t hi) {
    // Locals, not the captures: read through the lambda's references, the geometry was
    // reloaded from memory after every vector store.
    const PoolGeom G = g;
    const int64_t ld_ = ld, n_flat_ = n_flat, q_safe_ = q_safe, in_ = in, out_ = out;
    const int64_t left_ = left, owv_ = owv;
    const bool flat_ = flat, any_col_empty_ = any_col_empty;
    std::vector<float> rb(flat_ ? SW * (n_flat_ - q_safe_ + kVec) + G.kw + 2 * kVec : rb_len, pad);
    std::vector<float> rows_v(G.H * ld_ + kVec);
    std::vector<float> seeds_v(MAX ? G.H * ld_ + kVec : 0);  // first image pixel of window rows
    float* rows = rows_v.data();
    float* seeds = seeds_v.data();
    float* r = rb.data();
    const Vec padv = vset1(pad);
    for (int64_t p = lo; p < hi; ++p) {
      const float* xp = x + p * in_;
      if (flat_) {
        // Across, the whole plane: vectors below q_safe straight from x, the rest from a copy
        // of the plane's end (padding after it).
        copy_floats(xp + SW * q_safe_, in_ - SW * q_safe_, r);  // the padding after stays
        for (int64_t q0 = 0, v = 0; q0 < n_flat_; q0 += kVec, ++v) {
          const float* base = q0 < q_safe_ ? xp + SW * q0 : r + SW * (q0 - q_safe_);
          const uint32_t* bits = inside.data() + residue[v];
          const Vec first = load_taps(base);
          Vec acc = MAX ? vmax(vkeep(first, bits[0], padv), padv) : vkeep(first, bits[0], padv);
          for (int64_t j = 1; j < G.kw; ++j) {
            const Vec tap = vkeep(load_taps(base + j), bits[j * G.ow], padv);
            acc = MAX ? vmax(tap, acc) : vadd(acc, tap);
          }
          vstore(rows + q0, acc);
          if (MAX) vstore(seeds + q0, first);
        }
      } else {
        // Across, row by row: rows[h][o] = the window row of output column o in input row h.
        for (int64_t h = 0; h < G.H; ++h) {
          copy_floats(xp + h * G.W, G.W, r + G.pw);
          float* dst = rows + h * ld_;
          for (int64_t o = 0; o < owv_; o += kVec) {
            const float* base = r + o * SW;
            const Vec first = load_taps(base);
            Vec acc = MAX ? vmax(first, padv) : first;
            for (int64_t j = 1; j < G.kw; ++j) {
              const Vec tap = load_taps(base + j);
              acc = MAX ? vmax(tap, acc) : vadd(acc, tap);
            }
            vstore(dst + o, acc);
            if (MAX) vstore(seeds + h * ld_ + o, first);
          }
          if (MAX)  // windows starting in the padding: their seed is the first image column
            for (int64_t o = 0; o < left_; ++o)
              seeds[h * ld_ + o] = r[std::min(std::max(o * SW, G.pw), G.pw + G.W - 1)];
        }
      }
      // Down: output row yo from the window's image rows, in order.
      float* yp = y + p * out_;
      for (int64_t yo = 0; yo < G.oh; ++yo) {
        const int64_t h0 = yo * G.sh - G.ph;
        const int64_t i0 = std::max<int64_t>(0, -h0), i1 = std::min(G.kh, G.H - h0);
        float* dst = yp + yo * G.ow;
        if (i0 >= i1) {
          std::fill(dst, dst + G.ow, empty);
          continue;
        }
        const float* src = rows + (h0 + i0) * ld_;
        for (int64_t o = 0; o < G.ow; o += kVec) {
          Vec acc = vload(src + o);
          for (int64_t i = i0 + 1; i < i1; ++i) {
            const Vec tap = vload(src + (i - i0) * ld_ + o);
            acc = MAX ? vmax(tap, acc) : vadd(acc, tap);
          }
          if constexpr (MAX) acc = nan_or(vload(seeds + (h0 + i0) * ld_ + o), acc);
          else acc = vmul(acc, vload(inv.data() + yo * owv_ + o));
          if (o + kVec <= G.ow) vstore(dst + o, acc);
          else vstore_first(dst + o, acc, int(G.ow - o));
        }
        if (MAX && any_col_empty_)
          for (int64_t o = 0; o < G.ow; ++o)
            if (col_empty[o]) dst[o] = empty;
      }
    }
  });
}

template <bool MAX>
void separable_pool(const float* x, int64_t planes, const PoolGeom& g, float* y) {
  if (g.sw == 1) separable_pool<MAX, 1>(x, planes, g, y);
  else separable_pool<MAX, 2>(x, planes, g, y);
}
#endif

}  // namespace

// mask nullptr: the values only.
template <typename T>
void max_pool_forward(const T* x, int64_t planes, const PoolGeom& g, T* y, int32_t* mask) {
#if MC_ISA_LEVEL >= 1
  if constexpr (sizeof(T) == 4) {
    if (!mask && separable_applies(g)) {
      separable_pool<true>(x, planes, g, y);
      return;
    }
  }
#endif
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
#if MC_ISA_LEVEL >= 1
  if constexpr (sizeof(T) == 4) {
    if (separable_applies(g)) {
      separable_pool<false>(x, planes, g, y);
      return;
    }
  }
#endif
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
