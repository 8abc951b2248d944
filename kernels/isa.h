// Per-instruction-set compilation of the kernels (docs/KERNELS.md, "Instruction sets").
//
// The kernel sources (im2col.cc, gemm.cc, conv.cc, csrmm.cc, tile_gemm.cc, pooling.cc,
// table.cc) are compiled once per instruction set, with -DMC_ISA_LEVEL=0 (baseline x86-64, or
// the generic code elsewhere), 1 (AVX2 + FMA) or 2 (AVX-512 F/BW/DQ/VL/CD). Their code sits
// between MC_ISA_BEGIN and MC_ISA_END: inside namespace mc::<isa>, compiled for that
// instruction set by a target pragma. The objects' own flags stay baseline, so everything
// defined before the region (the standard library's templates, kernels.h, blas.h) is baseline
// code in every object. That matters because the linker keeps one out-of-line copy of, say,
// std::vector<float>::resize for the whole module, taken from whichever object it sees first:
// had the objects been compiled with -mavx512f, that copy could be AVX-512 code called from
// the baseline path (SIGILL on an older CPU). tests/ops/test_isa.py disassembles the module
// and checks that no code outside mc::avx2 / mc::avx512 uses 256- or 512-bit registers.
//
// Inside the region, MC_ISA_LEVEL (not __AVX2__ / __AVX512F__, which GCC's C++ front end does
// not redefine under a target pragma) says which instruction set this copy is for.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "blas.h"
#include "kernels.h"

#ifndef MC_ISA_LEVEL
#error "compile the kernel sources with -DMC_ISA_LEVEL=0 (baseline), 1 (avx2) or 2 (avx512)"
#endif

#if MC_ISA_LEVEL > 0 && !(defined(__x86_64__) || defined(_M_X64))
#error "MC_ISA_LEVEL 1 and 2 (AVX2, AVX-512) are x86-64 instruction sets"
#endif

#if MC_ISA_LEVEL > 0
#include <immintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#if MC_ISA_LEVEL == 0
#define MC_ISA baseline
#define MC_ISA_ENUM ::mc::Isa::baseline
#define MC_ISA_PUSH
#define MC_ISA_POP
#elif MC_ISA_LEVEL == 1
#define MC_ISA avx2
#define MC_ISA_ENUM ::mc::Isa::avx2
#if defined(__clang__)
#define MC_ISA_PUSH \
  _Pragma("clang attribute push(__attribute__((target(\"avx,avx2,fma,bmi,bmi2\"))), apply_to = function)")
#define MC_ISA_POP _Pragma("clang attribute pop")
#else
#define MC_ISA_PUSH _Pragma("GCC push_options") _Pragma("GCC target(\"avx,avx2,fma,bmi,bmi2\")")
#define MC_ISA_POP _Pragma("GCC pop_options")
#endif
#elif MC_ISA_LEVEL == 2
#define MC_ISA avx512
#define MC_ISA_ENUM ::mc::Isa::avx512
#if defined(__clang__)
#define MC_ISA_PUSH                                                                            \
  _Pragma("clang attribute push(__attribute__((target(\"avx,avx2,fma,bmi,bmi2,avx512f,avx512bw,avx512dq,avx512vl,avx512cd\"))), apply_to = function)")
#define MC_ISA_POP _Pragma("clang attribute pop")
#else
#define MC_ISA_PUSH         \
  _Pragma("GCC push_options") \
  _Pragma("GCC target(\"avx,avx2,fma,bmi,bmi2,avx512f,avx512bw,avx512dq,avx512vl,avx512cd\")")
#define MC_ISA_POP _Pragma("GCC pop_options")
#endif
#else
#error "MC_ISA_LEVEL must be 0, 1 or 2"
#endif

#define MC_ISA_BEGIN \
  MC_ISA_PUSH namespace mc { namespace MC_ISA {
#define MC_ISA_END \
  }                \
  }                \
  MC_ISA_POP

MC_ISA_BEGIN

// Loops split over the OpenMP team only when it pays. An OpenMP region whose `if` clause is
// false still goes through libgomp and costs about 0.5 us (a 500-value ReLU: 0.6 us inside one,
// 0.05 us without); a batch-1 forward of a small net entered a dozen, so small work runs on the
// calling thread without a region.
//
// body(i) for every i in [0, n): over the team (static schedule) when `parallel`, else in order.
template <typename F>
inline void for_each_index(int64_t n, bool parallel, const F& body) {
  if (parallel) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  for (int64_t i = 0; i < n; ++i) body(i);
}

// body(lo, hi) once per thread on a contiguous share of [0, n) (so each thread sets up its
// scratch once) when `parallel`, else body(0, n) on this thread.
template <typename F>
inline void for_each_share(int64_t n, bool parallel, const F& body) {
  if (!parallel) {
    body(0, n);
    return;
  }
#pragma omp parallel
  {
    int64_t t = 0, team = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    team = omp_get_num_threads();
#endif
    body(n * t / team, n * (t + 1) / team);
  }
}

// Bytes of one vector register of this instruction set (SSE2: 16, AVX2: 32, AVX-512: 64).
constexpr int kVectorBytes = MC_ISA_LEVEL == 2 ? 64 : MC_ISA_LEVEL == 1 ? 32 : 16;

// p[0], p[2], p[4], ...: the even lanes of two vector loads from p, one vector of values at a
// column stride of 2 (the convolution's strip packing and the separable pooling).
#if MC_ISA_LEVEL == 2
inline __m512 load_even_lanes(const float* p) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(_mm512_loadu_ps(p), even, _mm512_loadu_ps(p + 16));
}
#elif MC_ISA_LEVEL == 1
inline __m256 load_even_lanes(const float* p) {
  const __m256 mixed = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8),
                                         _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 a4 a6 b4 b6
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(mixed), _MM_SHUFFLE(3, 1, 2, 0)));
}
#endif

#if MC_ISA_LEVEL >= 1
constexpr int kFloatLanes = kVectorBytes / 4;  // floats per vector register

// dst[0..kFloatLanes) = src[0..kFloatLanes), one unaligned vector.
inline void copy_lanes(const float* src, float* dst) {
#if MC_ISA_LEVEL == 2
  _mm512_storeu_ps(dst, _mm512_loadu_ps(src));
#else
  _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
#endif
}

// dst[0..n) = src[0..n) in vectors, the tail masked (nothing past n read or written). Rows of
// 8-32 values: a memmove call per row cost CIFAR-10 quick's conv2 about 5 us per image in its
// padded copy.
inline void copy_floats(const float* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + kFloatLanes <= n; i += kFloatLanes) copy_lanes(src + i, dst + i);
  if (i == n) return;
#if MC_ISA_LEVEL == 2
  const __mmask16 m = __mmask16((1u << (n - i)) - 1);
  _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
#else
  const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n - i)),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  _mm256_maskstore_ps(dst + i, m, _mm256_maskload_ps(src + i, m));
#endif
}
#endif

// This instruction set's table of entry points (table.cc).
const Kernels& table();

// cols[t][n*oh*ow + p] = lowered row rows[t] (t itself when rows is null) of image n:
//   x[N][C][H][W] -> cols[n_rows][N*oh*ow]; only the listed rows are ever computed.
// parallel = false keeps it on the calling thread (it already is one of a team).
template <typename T>
void im2col_rows(const T* x, int64_t N, const Geom& g, const int64_t* rows, int64_t n_rows,
                 T* cols, bool parallel = true);

// Adjoint of the full lowering: cols[C*kh*kw][N*oh*ow] -> x[N][C][H][W] (overwritten, overlaps
// summed).
template <typename T>
void col2im(const T* cols, int64_t N, const Geom& g, T* x, bool parallel = true);

// c[M][N] = alpha * op(a) op(b) + beta * c; op(a) is (M, K), op(b) is (K, N).
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* a,
          const T* b, T beta, T* c);

// C[M][N] = A[M][K] * B, reading only the kept part of A:
//   a_packed[m_kept][k_kept] = rows row_idx[] x columns col_idx[] of A.
//   B is b[k_kept][N] (already the kept rows) when col_idx is null, else b[K][N] and the rows
//   col_idx[] are read. Rows of C not listed in row_idx are set to 0.
//   a_packed may hold m_pad >= m_kept rows (m_pad <= M), the extra ones all zero: BLAS runs
//   measurably slower for row counts that are not a multiple of its register tile (87 vs 88).
template <typename T>
void gemm_compact(int64_t M, int64_t N, int64_t K, const T* a_packed, int64_t m_pad,
                  const int64_t* row_idx, int64_t m_kept, const int64_t* col_idx, int64_t k_kept,
                  const T* b, T* c);

// Convolution forward, lowering and GEMM fused by blocks of images:
//   out[M][N*oh*ow] = A * (lowered rows col_idx[] of x[N][C][H][W]).
// A is a[m_pad][k]: its first m_kept rows are output rows row_idx[] (row_idx null: all M rows
// in order, m_pad == m_kept == M); the remaining m_pad - m_kept rows are zero padding.
// col_idx null means all K = C*kh*kw lowered rows (k == K). Each block of images is lowered
// into a scratch buffer of about block_bytes that stays in cache for its GEMM, instead of
// writing (and re-reading) the whole lowered batch. Rows of out not in row_idx are set to 0.
template <typename T>
void conv_forward(const T* x, int64_t N, const Geom& g, const T* a, int64_t m_pad, int64_t k,
                  const int64_t* row_idx, int64_t m_kept, int64_t M, const int64_t* col_idx,
                  T* out, int64_t block_bytes);

// Dense convolution for training, the batch split over the OpenMP team by chunks of whole
// images (each thread lowers and multiplies its own images with serial GEMMs, so the threads
// never meet inside a chunk); with one thread, or fewer images than threads, chunks run in
// order and each GEMM is split instead. A chunk's lowered block is about block_bytes.
//   w[M][C/group*kh*kw]: the lowered weights, group gi owning rows gi*M/group.. and channels
//   gi*C/group..; x[N][C][H][W]; y[N][M][oh*ow] = w * lowered x (+ bias[M] when not null).
// With `kept.rows` set, w is instead compacted weights of one group, a[m_pad][k]: its first
// m_kept rows are filters kept.rows[], the rest zero padding, and its columns are the lowered
// rows kept.cols[] (only those are lowered); removed filters output their bias.
template <typename T>
void conv_forward_nchw(const T* x, int64_t N, const Geom& g, int64_t group, const T* w,
                       int64_t M, const T* bias, T* y, int64_t block_bytes,
                       const Kept& kept = Kept());

// Its backward, from dy[N][M][oh*ow]: dw[M][C/group*kh*kw] += dL/dw and db[M] += dL/db (db may
// be null); dx[N][C][H][W] = dL/dx, overwritten (dx may be null). Per-thread partial sums of dw
// and db are added in thread order, so a run is reproducible for a given thread count.
template <typename T>
void conv_backward(const T* x, const T* dy, int64_t N, const Geom& g, int64_t group,
                   const T* w, int64_t M, T* dw, T* db, T* dx, int64_t block_bytes);

// Fully connected forward with compacted weights: out[Nb][M] = x[Nb][K] * A^T, reading only
// the kept inputs col_idx[] of x; outputs not in row_idx are 0.
template <typename T>
void linear_compact(int64_t Nb, int64_t M, int64_t K, const T* x, const T* a_packed,
                    const int64_t* row_idx, int64_t m_kept, const int64_t* col_idx,
                    int64_t k_kept, T* out);

// CSR (M, K) times dense b[K][N] -> c[M][N]; OpenMP over row chunks x column blocks, each
// block's accumulators held in vector registers.
template <typename T>
void csrmm(int64_t M, int64_t N, int64_t K, const int64_t* indptr, const int64_t* indices,
           const T* data, int64_t nnz, const T* b, T* c);

// x[Nb][K] times the transpose of CSR (M, K) -> out[Nb][M] (fully connected forward).
template <typename T>
void csrmm_t(int64_t Nb, int64_t M, int64_t K, const int64_t* indptr, const int64_t* indices,
             const T* data, int64_t nnz, const T* x, T* out);

// MAX pooling of `planes` (n, c) planes x[planes][H][W] -> y[planes][oh][ow] and
// mask[planes][oh][ow] = h*W + w of the first maximum of each window clipped to the image
// (-inf and -1 for a window wholly past the image).
template <typename T>
void max_pool_forward(const T* x, int64_t planes, const PoolGeom& g, T* y, int32_t* mask);

// dx[planes][H][W] = 0, then dx[p][mask[p][t]] += dy[p][t] (entries -1 skipped).
template <typename T>
void max_pool_backward(const T* dy, const int32_t* mask, int64_t planes, const PoolGeom& g,
                       T* dx);

// AVE pooling: y = sum over the window clipped to the image / window size clipped to
// (H + ph, W + pw) (Caffe); 0 for a window wholly past the image.
template <typename T>
void ave_pool_forward(const T* x, int64_t planes, const PoolGeom& g, T* y);

// dx[planes][H][W] = 0, then each dy spread as dy / size over its clipped window.
template <typename T>
void ave_pool_backward(const T* dy, int64_t planes, const PoolGeom& g, T* dx);

// Elementwise pieces of an inference forward (activations.cc); y may be x (in place).
// ReLU: y[i] = x[i] > 0 ? x[i] : slope * x[i] (NaN stays NaN), n values.
template <typename T>
void relu_forward(const T* x, int64_t n, T slope, T* y);
// Softmax over the middle axis of x[outer][channels][inner]: y = exp(x - max) / sum.
template <typename T>
void softmax_forward(const T* x, int64_t outer, int64_t channels, int64_t inner, T* y);
// y[r][c] += bias[c] for rows r < rows, c < cols.
template <typename T>
void add_bias_rows(T* y, int64_t rows, int64_t cols, const T* bias);

// This instruction set's own single-precision GEMM (tile_gemm.cc): row-major C[m][n] = A B,
// row i of the product stored in row c_rows[i] of C (row i when c_rows is null). Returns
// false, computing nothing, where it does not apply (no kernel for this instruction set,
// beta != 0, an empty product, or B wider than it handles well); the caller then uses the BLAS.
bool tile_sgemm(int m, int n, int k, const float* a, int lda, const float* b, int ldb,
                float beta, float* c, int ldc, const int64_t* c_rows = nullptr);
constexpr bool kHasTileGemm = MC_ISA_LEVEL >= 1;

// The convolution forward's product on one packed strip (tile_gemm.cc, conv.cc): strip[k][ldb]
// (ldb >= kConvStrip) holds `width` <= kConvStrip columns of the lowered input (what lies past
// `width` in a row is never stored), A is a[m][lda]; row i of the product, plus bias[i] when
// bias is not null, goes to crow[i][0 .. width). kConvStrip is 0 where there is no kernel of
// our own.
constexpr int kConvStrip = MC_ISA_LEVEL >= 1 ? 48 : 0;
void strip_product(int m, int k, const float* a, int lda, const float* strip, int ldb, int width,
                   float* const* crow, const float* bias);

// One thread's share of a product: the convolution forward (Tiles) tries our kernel first.
// c_rows (beta == 0 only): row i of the product goes to row c_rows[i] of C; the BLAS, which
// cannot scatter rows, then writes a scratch block that is copied out row by row.
template <bool Tiles, typename T>
void serial_product(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda,
                    const T* b, int ldb, T beta, T* c, int ldc, const int64_t* c_rows = nullptr) {
  if constexpr (Tiles && sizeof(T) == 4) {
    if (!ta && !tb && alpha == T(1) && tile_gemm_enabled() &&
        tile_sgemm(m, n, k, a, lda, b, ldb, beta, c, ldc, c_rows))
      return;
  }
  if (!c_rows) {
    serial_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  thread_local std::vector<T> block;
  block.resize(int64_t(m) * n);
  serial_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, T(0), block.data(), n);
  for (int i = 0; i < m; ++i)
    std::copy(block.data() + int64_t(i) * n, block.data() + int64_t(i + 1) * n,
              c + c_rows[i] * ldc);
}

// Row-major C[m][n] = alpha op(A) op(B) + beta C. With an OpenBLAS that threads with its own
// pthreads, our OpenMP kernels and BLAS would be two pools fighting over the cores; so the
// BLAS runs single-threaded and large products are split here, over OpenMP, into column
// blocks (or row blocks when C is tall), one serial GEMM per thread: one pool for everything.
// Tiles = true (the convolution forwards) runs each share through serial_product<true>.
// c_rows: as serial_product's.
template <typename T, bool Tiles = false>
void blas_gemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
               int ldb, T beta, T* c, int ldc, const int64_t* c_rows = nullptr) {
  const int threads = gemm_split_threads();
  // Below ~2M multiply-adds a serial call beats waking the other threads.
  if (threads <= 1 || double(m) * n * k < double(1 << 21)) {
    serial_product<Tiles>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, c_rows);
    return;
  }
  const bool split_rows = m > n;
  const int extent = split_rows ? m : n;
  const int parts = std::min(threads, std::max(1, extent / 16));
#pragma omp parallel for schedule(static) num_threads(parts)
  for (int p = 0; p < parts; ++p) {
    const int lo = int(int64_t(extent) * p / parts), hi = int(int64_t(extent) * (p + 1) / parts);
    if (split_rows)  // rows lo..hi of op(A) and of C
      serial_product<Tiles>(ta, tb, hi - lo, n, k, alpha, ta ? a + lo : a + int64_t(lo) * lda,
                            lda, b, ldb, beta, c_rows ? c : c + int64_t(lo) * ldc, ldc,
                            c_rows ? c_rows + lo : nullptr);
    else             // columns lo..hi of op(B) and of C
      serial_product<Tiles>(ta, tb, m, hi - lo, k, alpha, a, lda,
                            tb ? b + int64_t(lo) * ldb : b + lo, ldb, beta, c + lo, ldc, c_rows);
  }
}

MC_ISA_END
