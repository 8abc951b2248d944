// Dense convolution for training: forward into NCHW with the bias fused, and backward (dW, db,
// dx), the batch split over threads by whole images.
//
// Why by images: splitting every GEMM of a chunk over the threads (blas_gemm) costs a fork and
// a join per GEMM, per lowering and per col2im; CIFAR-10 quick's conv2 backward does 400 of
// them per iteration on GEMMs of 32 x 800 x 256, and two threads ran it only 1.5x faster than
// one. Images are independent, so each thread takes its own chunks with serial GEMMs and its
// own dW partial sum, and the threads meet once, at the end.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "isa.h"

#ifdef _OPENMP
#include <omp.h>
#endif

MC_ISA_BEGIN
namespace {

int team_size() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_num() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// How the batch is cut: `per_chunk` images per chunk (the last may have fewer), `count` chunks,
// `threads` > 1 when whole chunks go to different threads.
struct Plan {
  int64_t per_chunk, count;
  int threads;
};

// Chunks of about block_bytes of lowered input; with a team, a multiple of the team's size
// of chunks (so static scheduling gives every thread the same number of images) when there
// are at least as many images as threads.
Plan plan_chunks(int64_t N, int64_t bytes_per_image, int64_t block_bytes) {
  const int64_t fit = block_bytes / std::max<int64_t>(1, bytes_per_image);
  int64_t per = std::max<int64_t>(1, std::min<int64_t>(N, fit));
  const int team = team_size();
  if (team < 2 || N < team) return {per, (N + per - 1) / per, 1};
  int64_t count = (N + per - 1) / per;
  count = (count + team - 1) / team * team;
  per = (N + count - 1) / count;
  return {per, (N + per - 1) / per, team};
}

// Per-thread scratch, kept between calls (the team's threads live on) so no iteration
// allocates: the lowered chunk, its gradient, the chunk's (M, n*P) output or top gradient, and
// the partial sums of dW^T and db.
template <typename T>
struct Scratch {
  std::vector<T> cols, dcols, mat, dwt;
  std::vector<double> db;
};

template <typename T>
Scratch<T>& scratch() {
  thread_local Scratch<T> s;
  return s;
}

void check_conv(const char* op, const Geom& g, int64_t N, int64_t group, int64_t M,
                int64_t block_bytes) {
  check_geom(op, g);
  check_size(op, "N", N);
  check_size(op, "M", M);
  if (group < 1) fail(op, "group = ", group, "; expected >= 1");
  if (g.C % group) fail(op, "group = ", group, " does not divide the ", g.C, " channels");
  if (M % group) fail(op, "group = ", group, " does not divide M = ", M);
  if (block_bytes < 1) fail(op, "block_bytes = ", block_bytes, "; expected >= 1");
  const int64_t K = g.rows() / group, P = g.cols();
  for (int64_t v : {M / group, K, P})
    if (v > INT_MAX) fail(op, "a GEMM size of ", v, " exceeds BLAS's 32-bit sizes");
}

// y[j][m][p] = mat[slot[m]][j*P + p] (+ bias[m]) for the n images of a chunk; slot null means
// slot[m] = m, slot[m] < 0 (a removed filter) or mat null gives the bias alone (or 0).
template <typename T>
void store_rows(const T* mat, const int64_t* slot, int64_t n, int64_t M, int64_t P,
                const T* bias, T* y) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t m = 0; m < M; ++m) {
      const int64_t r = !mat ? -1 : slot ? slot[m] : m;
      T* dst = y + (j * M + m) * P;
      const T b = bias ? bias[m] : T(0);
      if (r < 0) {
        std::fill(dst, dst + P, b);
        continue;
      }
      const T* src = mat + r * n * P + j * P;
      for (int64_t p = 0; p < P; ++p) dst[p] = src[p] + b;
    }
}

#if MC_ISA_LEVEL >= 1
// Convolution forward at column stride 1 or 2 without a lowered matrix (float32, our own tile
// kernel): each image is copied once with its zero padding, and every strip of kConvStrip
// output pixels is packed straight from that copy, then multiplied with the bias added on the
// way out. At column stride 2 (ResNet's downsampling convolutions) a piece is the even lanes
// of two vector loads.
//
// Why: the lowered matrix of a 5 x 5 convolution is 25x its input; writing it (im2col) and
// reading it back to pack the GEMM's strips cost CIFAR-10 quick's conv2 about a fifth of its
// time. With the padding in the copy, lowered row k = (c, i, j) of output pixels p..p+15 in one
// output row is the 16 consecutive values at xpad[c][oy*sh + i*dh][ox + j*dw], one unaligned
// vector load: packing a strip is a load and a store per row and piece, no bounds checks.
constexpr int kLanes = kFloatLanes;  // floats per vector (and per piece)

// dst[0..kLanes) = src[0], src[2], src[4], ...
inline void copy_even_lanes(const float* src, float* dst) {
#if MC_ISA_LEVEL == 2
  _mm512_storeu_ps(dst, load_even_lanes(src));
#else
  _mm256_storeu_ps(dst, load_even_lanes(src));
#endif
}

// A run of at most kLanes output pixels of one output row inside a strip: strip columns
// at..at+kLanes are loaded from xpad + from (+ the lowered row's offset). Loads past the run
// read neighbouring values of the padded image; they land in columns the next piece
// overwrites (pieces go left to right) or past the strip's width, which is never read: a
// packed row is kStripLd = 64 >= kConvStrip + kLanes wide, so the last piece's spill stays in its
// own row whatever order the rows are packed in (AVX2 needs 8 of the 16 spare floats).
struct Piece {
  int64_t from;
  int at;
};

constexpr int kStripLd = 64;  // floats per packed row: kConvStrip + a vector of spill, 64-byte rows

// A padded copy of one image per convolution geometry: its border is zeroed once, when the
// buffer is made, and never written after (copies fill the interior only), so a batch-1
// forward does not clear a few thousand values per layer. A few geometries of up to 1 MB are
// kept per thread (one per convolution of a net), the least recently used one replaced; a
// larger image (a VGG layer's 64 x 226 x 226: 13 MB) uses one buffer per thread, cleared per call,
// which costs little next to its convolution.
struct PaddedImage {
  int64_t C = 0, H = 0, W = 0, ph = 0, pw = 0, used = 0;
  std::vector<float> data;
};

struct StripScratch {
  std::vector<float> strip_store;  // the packed strip, from its first 64-byte boundary
  float* strip = nullptr;
  std::vector<Piece> pieces;
  std::vector<float*> crow;
  PaddedImage padded[8];
  std::vector<float> large;
  int64_t clock = 0;

  float* xpad(const Geom& g) {
    const int64_t size = g.C * (g.H + 2 * g.ph) * (g.W + 2 * g.pw) + 2 * kLanes;  // slack: a
    // piece's loads run up to 2 vectors (stride 2) past its first value
    if (size * int64_t(sizeof(float)) > (1 << 20)) {
      large.assign(size, 0.f);
      return large.data();
    }
    PaddedImage* pick = &padded[0];
    for (PaddedImage& p : padded) {
      if (p.C == g.C && p.H == g.H && p.W == g.W && p.ph == g.ph && p.pw == g.pw) {
        p.used = ++clock;
        return p.data.data();
      }
      if (p.used < pick->used) pick = &p;
    }
    *pick = PaddedImage{g.C, g.H, g.W, g.ph, g.pw, ++clock, {}};
    pick->data.assign(size, 0.f);
    return pick->data.data();
  }
};

StripScratch& strip_scratch() {
  thread_local StripScratch s;
  return s;
}

// Strip starts over output pixels [lo, hi) appended to `at`: kConvStrip wide, except that a
// last strip narrower than two vectors is evened out with the one before it (64 pixels:
// 32 + 32, not 48 + 16: one-vector tiles run at about half the speed).
void add_strips(int64_t lo, int64_t hi, std::vector<int64_t>& at) {
  const size_t first = at.size();
  for (int64_t p = lo; p < hi; p += kConvStrip) at.push_back(p);
  const int64_t tail = hi - at.back();
  if (at.size() - first > 1 && tail < 2 * kLanes) {
    const int64_t pair = kConvStrip + tail;  // the last two strips' pixels
    at.back() = at[at.size() - 2] + (pair / 2 + kLanes - 1) / kLanes * kLanes;
  }
}

// Strip boundaries over one image's P output pixels (P last). With fewer images than
// threads, the pixels are first cut into `parts` ranges of (nearly) equal width, each cut
// into strips on its own, so every thread gets the same columns: CIFAR-10 quick's conv2 at
// batch 1 (256 pixels) gets 48 48 32 | 48 48 32, not 48 48 48 | 48 32 32.
std::vector<int64_t> strip_starts(int64_t P, int64_t parts) {
  std::vector<int64_t> at;
  int64_t lo = 0;
  for (int64_t t = 1; t <= parts; ++t) {
    const int64_t hi = t == parts ? P : P * t / parts / kLanes * kLanes;
    if (hi > lo) add_strips(lo, hi, at);
    lo = std::max(lo, hi);
  }
  at.push_back(P);
  return at;
}

// Whether conv_forward_strips runs this convolution: column stride 1 or 2, and a lowered
// matrix at least as large as the image (it copies the whole image once; a 1 x 1 stride-2
// projection reads a quarter of it, and its lowering, which writes only that quarter, was as
// fast or faster: 1.05-1.09x the lowering path's time at batch 1).
bool strips_apply(const Geom& g) {
  return tile_gemm_enabled() && (g.sw == 1 || g.sw == 2) && g.kh * g.kw * g.cols() >= g.H * g.W;
}

void conv_forward_strips(const float* x, int64_t N, const Geom& g, int64_t group,
                         const float* w, int64_t M, const float* bias, float* y,
                         const Kept& kept) {
  const bool compact = kept.rows != nullptr;
  const int64_t taps = g.kh * g.kw, cg = g.C / group;
  const int64_t K = compact ? kept.k : cg * taps;        // lowered rows per group
  const int64_t mg = compact ? kept.m_kept : M / group;  // GEMM rows per group
  const int64_t lda = compact ? kept.k : cg * taps;
  const int64_t oh = g.oh(), ow = g.ow(), P = oh * ow;
  const int64_t Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw, plane = Hp * Wp;
  const double macs = double(N) * P * K * mg * group;
  const int team = team_size();
  const bool parallel = team > 1 && macs >= double(1 << 21) && N * ((P + kConvStrip - 1) / kConvStrip) > 1;
  const std::vector<int64_t> starts = strip_starts(P, parallel && N < team ? team : 1);
  const int64_t strips = int64_t(starts.size()) - 1, units = N * strips;
  // Lowered row -> offset of its (c, i, j) in the padded copy (group 0's numbering; a group
  // adds its first channel's plane), filled without divisions; compacted: the kept rows.
  std::vector<int64_t> offset(cg * taps);
  for (int64_t c = 0, r = 0; c < cg; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) offset[r++] = c * plane + i * g.dh * Wp + j * g.dw;
  if (compact)
    for (int64_t r = 0; r < K; ++r) offset[r] = offset[kept.cols[r]];  // kept.cols ascending
  // Per GEMM row: its output filter and bias; removed filters of a compacted convolution
  // output their bias (or 0).
  std::vector<int64_t> filter(mg * group);
  std::vector<float> row_bias(mg * group + 16, 0.f);
  for (int64_t gi = 0; gi < group; ++gi)
    for (int64_t r = 0; r < mg; ++r) {
      const int64_t m = compact ? kept.rows[r] : gi * mg + r;
      filter[gi * mg + r] = m;
      row_bias[gi * mg + r] = bias ? bias[m] : 0.f;
    }
  std::vector<int64_t> removed;
  if (compact) {
    std::vector<char> kept_filter(M, 0);
    for (int64_t t = 0; t < kept.m_kept; ++t) kept_filter[kept.rows[t]] = 1;
    for (int64_t m = 0; m < M; ++m)
      if (!kept_filter[m]) removed.push_back(m);
  }

  for_each_share(units, parallel, [&](int64_t lo, int64_t hi) {
    StripScratch& s = strip_scratch();
    float* xpad = s.xpad(g);
    s.strip_store.resize(K * kStripLd + 16);
    s.strip = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(s.strip_store.data()) + 63) &
                                       ~uintptr_t(63));
    s.crow.resize(mg + 16);
    int64_t padded = -1;  // the image now in xpad
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t n = u / strips, p0 = starts[u % strips], width = starts[u % strips + 1] - p0;
      if (n != padded) {  // copy image n into the padded planes (the border stays zero)
        const float* xn = x + n * g.C * g.H * g.W;
        for (int64_t c = 0; c < g.C; ++c)
          for (int64_t h = 0; h < g.H; ++h)
            copy_floats(xn + (c * g.H + h) * g.W, g.W, xpad + c * plane + (h + g.ph) * Wp + g.pw);
        padded = n;
      }
      // The strip's pieces: runs of up to kLanes pixels within one output row.
      s.pieces.clear();
      for (int64_t p = p0; p < p0 + width;) {
        const int64_t oy = p / ow, ox = p % ow;
        const int64_t len = std::min<int64_t>({kLanes, ow - ox, p0 + width - p});
        s.pieces.push_back({oy * g.sh * Wp + ox * g.sw, int(p - p0)});
        p += len;
      }
      float* yn = y + n * M * P;
      for (int64_t m : removed) std::fill(yn + m * P + p0, yn + m * P + p0 + width, bias ? bias[m] : 0.f);
      const int64_t* off = offset.data();
      for (int64_t gi = 0; gi < group; ++gi) {
        const float* xg = xpad + gi * cg * plane;
        // Piece by piece, down the lowered rows: a load (offset table) and a store per row.
        // (K copied to a local: read through the lambda's reference it was reloaded from
        // memory after every store.)
        const int64_t rows = K;
        for (const Piece& pc : s.pieces) {
          const float* src = xg + pc.from;
          float* dst = s.strip + pc.at;
          if (g.sw == 1)
            for (int64_t r = 0; r < rows; ++r, dst += kStripLd) copy_lanes(src + off[r], dst);
          else
            for (int64_t r = 0; r < rows; ++r, dst += kStripLd) copy_even_lanes(src + off[r], dst);
        }
        for (int64_t r = 0; r < mg; ++r) s.crow[r] = yn + filter[gi * mg + r] * P + p0;
        const float* a = compact ? w : w + gi * mg * lda;
        strip_product(int(mg), int(K), a, int(lda), s.strip, kStripLd, int(width), s.crow.data(),
                      row_bias.data() + gi * mg);
      }
    }
  });
}
#endif

}  // namespace

template <typename T>
void conv_forward_nchw(const T* x, int64_t N, const Geom& g, int64_t group, const T* w,
                       int64_t M, const T* bias, T* y, int64_t block_bytes,
                       const Kept& kept) {
  const char* op = sizeof(T) == 4 ? "f32_conv_forward_nchw" : "f64_conv_forward_nchw";
  check_conv(op, g, N, group, M, block_bytes);
  const bool compact = kept.rows != nullptr;
  if (compact) {
    if (group != 1) fail(op, "compacted weights take group = 1, not ", group);
    check_kept_rows(op, "rows", kept.rows, kept.m_kept, kept.m_pad, M);
    check_index_list(op, "cols", kept.cols, kept.k, g.rows());
  }
  // Lowered rows (kept columns of W) and GEMM rows (kept filters, padded) of each chunk.
  const int64_t K = compact ? kept.k : g.rows(), kg = K / group;
  const int64_t mg = compact ? kept.m_pad : M / group, P = g.cols();
  const int64_t image = g.C * g.H * g.W;
  if (N == 0 || M == 0 || P == 0) return;
#if MC_ISA_LEVEL >= 1
  if constexpr (sizeof(T) == 4) {
    if (K > 0 && (!compact || kept.m_kept > 0) && strips_apply(g)) {
      conv_forward_strips(x, N, g, group, w, M, bias, y, kept);
      return;
    }
  }
#endif
  // slot[m]: the GEMM row holding filter m, -1 for a removed filter (its output is the bias).
  std::vector<int64_t> slot;
  if (compact) {
    slot.assign(M, -1);
    for (int64_t t = 0; t < kept.m_kept; ++t) slot[kept.rows[t]] = t;
  }
  const Plan plan = plan_chunks(N, std::max<int64_t>(K, 1) * P * int64_t(sizeof(T)), block_bytes);
  // split: chunks in order, each lowering split over the team; blas_gemm splits its product
  // there and runs serially inside a thread's chunk (it checks omp_in_parallel).
  const bool split = plan.threads == 1;

  auto run_chunk = [&](int64_t c) {
    Scratch<T>& s = scratch<T>();
    const int64_t n0 = c * plan.per_chunk, n = std::min(plan.per_chunk, N - n0), cols_n = n * P;
    T* yc = y + n0 * M * P;
    if (K == 0 || (compact && kept.m_kept == 0)) {  // nothing kept: every output is its bias
      store_rows<T>(nullptr, nullptr, n, M, P, bias, yc);
      return;
    }
    s.cols.resize(K * cols_n);
    im2col_rows<T>(x + n0 * image, n, g, compact ? kept.cols : nullptr, K, s.cols.data(), split);
    // Dense weights and one image: the GEMM writes its (M, P) output in place; otherwise
    // through (GEMM rows, n*P) and a copy to the images' filter rows.
    const bool direct = !compact && n == 1;
    T* dst = yc;
    if (!direct) {
      s.mat.resize(group * mg * cols_n);
      dst = s.mat.data();
    }
    for (int64_t gi = 0; gi < group; ++gi)
      blas_gemm<T, true>(false, false, int(mg), int(cols_n), int(kg), T(1), w + gi * mg * kg,
                         int(kg), s.cols.data() + gi * kg * cols_n, int(cols_n), T(0),
                         dst + gi * mg * cols_n, int(cols_n));
    if (!direct) store_rows<T>(s.mat.data(), compact ? slot.data() : nullptr, n, M, P, bias, yc);
    else if (bias)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t p = 0; p < P; ++p) yc[m * P + p] += bias[m];
  };

  if (split) {
    for (int64_t c = 0; c < plan.count; ++c) run_chunk(c);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(plan.threads)
  for (int64_t c = 0; c < plan.count; ++c) run_chunk(c);
}

template <typename T>
void conv_backward(const T* x, const T* dy, int64_t N, const Geom& g, int64_t group,
                   const T* w, int64_t M, T* dw, T* db, T* dx, int64_t block_bytes) {
  const char* op = sizeof(T) == 4 ? "f32_conv_backward" : "f64_conv_backward";
  check_conv(op, g, N, group, M, block_bytes);
  const int64_t K = g.rows(), kg = K / group, mg = M / group, P = g.cols();
  const int64_t image = g.C * g.H * g.W;
  if (N == 0) return;
  if (M == 0 || P == 0) {  // no output: nothing reaches the weights; dx is all zero
    if (dx) std::fill(dx, dx + N * image, T(0));
    return;
  }
  const Plan plan = plan_chunks(N, K * P * int64_t(sizeof(T)), block_bytes);
  const bool split = plan.threads == 1;
  auto run_chunk = [&](int64_t c, T* dwt_acc, double* db_acc) {
    Scratch<T>& s = scratch<T>();
    const int64_t n0 = c * plan.per_chunk, n = std::min(plan.per_chunk, N - n0), cols_n = n * P;
    s.cols.resize(K * cols_n);
    im2col_rows<T>(x + n0 * image, n, g, nullptr, K, s.cols.data(), split);
    // The chunk's top gradient as (M, n*P): one image is that already.
    const T* dyc = dy + n0 * M * P;
    if (n > 1) {
      s.mat.resize(M * cols_n);
      for (int64_t j = 0; j < n; ++j)
        for (int64_t m = 0; m < M; ++m)
          std::copy(dyc + (j * M + m) * P, dyc + (j * M + m + 1) * P,
                    s.mat.data() + m * cols_n + j * P);
      dyc = s.mat.data();
    }
    if (db_acc)
      for (int64_t m = 0; m < M; ++m) {
        double sum = 0;
        for (int64_t t = 0; t < cols_n; ++t) sum += dyc[m * cols_n + t];
        db_acc[m] += sum;
      }
    for (int64_t gi = 0; gi < group; ++gi)  // dW_g^T += cols_g dY_g^T
      blas_gemm<T>(false, true, int(kg), int(mg), int(cols_n), T(1),
                   s.cols.data() + gi * kg * cols_n, int(cols_n), dyc + gi * mg * cols_n,
                   int(cols_n), T(1), dwt_acc + gi * kg * mg, int(mg));
    if (!dx) return;
    s.dcols.resize(K * cols_n);
    for (int64_t gi = 0; gi < group; ++gi)  // dcols_g = W_g^T dY_g
      blas_gemm<T>(true, false, int(kg), int(cols_n), int(mg), T(1), w + gi * mg * kg, int(kg),
                   dyc + gi * mg * cols_n, int(cols_n), T(0), s.dcols.data() + gi * kg * cols_n,
                   int(cols_n));
    col2im<T>(s.dcols.data(), n, g, dx + n0 * image, split);
  };

  // Each thread sums dW^T (group gi's block at gi*kg*mg, kg x mg): dW^T += cols dY^T runs
  // 1.2-1.5x faster in OpenBLAS than dW += dY cols^T when M is small (32-64 filters against
  // 800 lowered rows), and the transpose is paid once per call, not per chunk.
  std::vector<T*> dwt_part(plan.threads, nullptr);
  std::vector<double*> db_part(plan.threads, nullptr);
  auto thread_sums = [&](int t) {
    Scratch<T>& s = scratch<T>();
    s.dwt.assign(M * kg, T(0));
    dwt_part[t] = s.dwt.data();
    if (db) {
      s.db.assign(M, 0.0);
      db_part[t] = s.db.data();
    }
  };
  if (split) {
    thread_sums(0);
    for (int64_t c = 0; c < plan.count; ++c) run_chunk(c, dwt_part[0], db_part[0]);
  } else {
#pragma omp parallel num_threads(plan.threads)
    {
      thread_sums(thread_num());
#pragma omp for schedule(static)
      for (int64_t c = 0; c < plan.count; ++c)
        run_chunk(c, dwt_part[thread_num()], db_part[thread_num()]);
    }
  }
  // Add the partial sums in thread order (reproducible for a given thread count).
  const int parts = split ? 1 : plan.threads;
#pragma omp parallel for schedule(static) if (!split && M * kg > (1 << 14))
  for (int64_t m = 0; m < M; ++m) {
    const int64_t gi = m / mg, r = m % mg;
    for (int64_t k = 0; k < kg; ++k) {
      T sum = dw[m * kg + k];
      for (int u = 0; u < parts; ++u)
        if (dwt_part[u]) sum += dwt_part[u][gi * kg * mg + k * mg + r];
      dw[m * kg + k] = sum;
    }
  }
  if (db)
    for (int64_t m = 0; m < M; ++m) {
      double sum = 0;
      for (int u = 0; u < parts; ++u)
        if (db_part[u]) sum += db_part[u][m];
      db[m] += T(sum);
    }
}

template void conv_forward_nchw<float>(const float*, int64_t, const Geom&, int64_t, const float*,
                                       int64_t, const float*, float*, int64_t, const Kept&);
template void conv_forward_nchw<double>(const double*, int64_t, const Geom&, int64_t,
                                        const double*, int64_t, const double*, double*, int64_t,
                                        const Kept&);
template void conv_backward<float>(const float*, const float*, int64_t, const Geom&, int64_t,
                                   const float*, int64_t, float*, float*, float*, int64_t);
template void conv_backward<double>(const double*, const double*, int64_t, const Geom&, int64_t,
                                    const double*, int64_t, double*, double*, double*, int64_t);

MC_ISA_END
