// Our own single-precision GEMM for the convolution forward: C = A B, row-major,
// AVX-512. Measured faster than OpenBLAS's SkylakeX sgemm on the lowered-convolution shapes
// (a few hundred filters, K of a few hundred to a few thousand, N = one or a few images of
// pixels): 1.05-1.19x on AlexNet conv2-conv5 and their SSL-compacted shapes, one thread
// (docs/KERNELS.md has the table).
//
// Why it wins there: OpenBLAS packs both operands for every call and blocks for large
// matrices; here A (the weights) is read in place, 8 rows at a time, and B is packed one
// strip of 48 columns at a time, over the whole K, so each 8 x 48 tile of C is computed in
// one pass with 24 accumulators in registers and written once.
// For wide B (conv1: 3025 columns) OpenBLAS is faster; the callers keep the BLAS there.
#include <algorithm>
#include <vector>

#include "isa.h"

MC_ISA_BEGIN

#if MC_ISA_LEVEL == 2
namespace {

constexpr int kTileRows = 8;       // rows of A broadcast per k step
constexpr int kStripCols = 48;     // columns of B per strip: 3 vectors of 16 floats
constexpr int64_t kWideB = 1536;   // beyond this many columns per call, leave it to the BLAS

// strip[k][nv*16] = B[k][n0 ..] for one strip of nv vectors, `last` masking the columns of
// the last one that exist (the rest are zero).
void pack_strip(int k, const float* b, int ldb, int nv, __mmask16 last, float* strip) {
  for (int kk = 0; kk < k; ++kk, b += ldb, strip += nv * 16)
    for (int v = 0; v < nv; ++v)
      _mm512_storeu_ps(strip + v * 16, _mm512_maskz_loadu_ps(v == nv - 1 ? last : 0xffff,
                                                             b + v * 16));
}

// C[rows][width] = A[rows][k] x strip[k][NV*16]; `last` masks the strip's last vector.
// A is read in place, 8 rows side by side (8 sequential streams the prefetcher follows):
// packing it per call cost as much as the product saved. Rows past `rows` re-read the last
// row and are never stored. Fully unrolled over the tile so the 8 x NV accumulators stay in
// registers (with a runtime row count in the store loop GCC kept them on the stack: 3x
// slower).
// Row i of the tile is stored at crow[i] (rows of C need not be adjacent: a compacted
// convolution writes its kept filters' rows in place).
// strip[k][sstride] (sstride >= NV*16); bias (null: none): bias[i] is added to row i.
template <int NV>
void tile(int k, const float* a, int lda, const float* strip, int sstride, float* const* crow,
          int rows, __mmask16 last, const float* bias) {
  const float* row[kTileRows];
#pragma GCC unroll 8
  for (int i = 0; i < kTileRows; ++i) row[i] = a + int64_t(std::min(i, rows - 1)) * lda;
  __m512 acc[kTileRows][NV];
#pragma GCC unroll 8
  for (int i = 0; i < kTileRows; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int kk = 0; kk < k; ++kk, strip += sstride) {
    __m512 bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(strip + v * 16);
#pragma GCC unroll 8
    for (int i = 0; i < kTileRows; ++i) {
      const __m512 ai = _mm512_set1_ps(row[i][kk]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < kTileRows; ++i) {
    if (i >= rows) break;
    const __m512 b = _mm512_set1_ps(bias ? bias[i] : 0.f);
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) {
      const __mmask16 mask = v == NV - 1 ? last : __mmask16(0xffff);
      _mm512_mask_storeu_ps(crow[i] + v * 16, mask, bias ? _mm512_add_ps(acc[i][v], b) : acc[i][v]);
    }
  }
}

}  // namespace

bool tile_sgemm(int m, int n, int k, const float* a, int lda, const float* b, int ldb,
                float beta, float* c, int ldc, const int64_t* c_rows) {
  if (n > kWideB || m < 1 || n < 1 || k < 1 || beta != 0.f) return false;
  thread_local std::vector<float> strip;
  const int tiles = (m + kTileRows - 1) / kTileRows;
  strip.resize(int64_t(k) * kStripCols);
  for (int n0 = 0; n0 < n; n0 += kStripCols) {
    const int width = std::min(kStripCols, n - n0), nv = (width + 15) / 16;
    const __mmask16 last = __mmask16((1u << (width - (nv - 1) * 16)) - 1);
    pack_strip(k, b + n0, ldb, nv, last, strip.data());
    for (int t = 0; t < tiles; ++t) {
      const int rows = std::min(kTileRows, m - t * kTileRows);
      const float* at = a + int64_t(t) * kTileRows * lda;
      float* crow[kTileRows];
      for (int i = 0; i < rows; ++i) {
        const int64_t r = int64_t(t) * kTileRows + i;
        crow[i] = c + (c_rows ? c_rows[r] : r) * ldc + n0;
      }
      switch (nv) {
        case 3: tile<3>(k, at, lda, strip.data(), nv * 16, crow, rows, last, nullptr); break;
        case 2: tile<2>(k, at, lda, strip.data(), nv * 16, crow, rows, last, nullptr); break;
        default: tile<1>(k, at, lda, strip.data(), nv * 16, crow, rows, last, nullptr);
      }
    }
  }
  return true;
}

void strip_product(int m, int k, const float* a, int lda, const float* strip, int ldb, int width,
                   float* const* crow, const float* bias) {
  const int nv = (width + 15) / 16;
  const __mmask16 last = __mmask16((1u << (width - (nv - 1) * 16)) - 1);
  for (int t = 0; t * kTileRows < m; ++t) {
    const int rows = std::min(kTileRows, m - t * kTileRows);
    const float* at = a + int64_t(t) * kTileRows * lda;
    float* const* ct = crow + t * kTileRows;
    const float* bt = bias ? bias + t * kTileRows : nullptr;
    switch (nv) {
      case 3: tile<3>(k, at, lda, strip, ldb, ct, rows, last, bt); break;
      case 2: tile<2>(k, at, lda, strip, ldb, ct, rows, last, bt); break;
      default: tile<1>(k, at, lda, strip, ldb, ct, rows, last, bt);
    }
  }
}

#elif MC_ISA_LEVEL == 1
namespace {

// AVX2 has 16 vector registers of 8 floats: a tile of 6 rows x 2 vectors keeps 12
// accumulators, the 2 vectors of B and one broadcast of A in registers (the shape BLIS and
// OpenBLAS use on Haswell). B is packed 48 columns at a time, as three 16-column sub-strips,
// each contiguous over the whole K; a tile of 6 rows of A runs all three sub-strips in turn, so
// A's rows come from cache the second and third time instead of from memory.
constexpr int kTileRows = 6;
constexpr int kSubCols = 16;              // columns of one tile: 2 vectors of 8 floats
constexpr int kStripCols = 3 * kSubCols;  // columns of B packed per strip
constexpr int64_t kWideB = 1536;          // beyond this many columns per call, the BLAS

// Lanes [0, count) of a vector set, as maskload/maskstore want them (sign bit per lane).
inline __m256i first_lanes(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// strip[s][k][16] = B[k][n0 + 16 s ..] for the sub-strips s of a strip `width` columns wide,
// zero past the last existing column (masked loads: nothing past it is read).
void pack_strip(int k, const float* b, int ldb, int width, float* strip) {
  for (int s = 0; s * kSubCols < width; ++s) {
    const int w = std::min(kSubCols, width - s * kSubCols);
    const float* src = b + s * kSubCols;
    float* dst = strip + int64_t(s) * k * kSubCols;
    const __m256i m0 = first_lanes(w), m1 = first_lanes(w - 8);
    for (int kk = 0; kk < k; ++kk, src += ldb, dst += kSubCols) {
      _mm256_storeu_ps(dst, w >= 8 ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, m0));
      _mm256_storeu_ps(dst + 8, w == kSubCols ? _mm256_loadu_ps(src + 8)
                                              : _mm256_maskload_ps(src + 8, m1));
    }
  }
}

// C[rows][width] = A[rows][k] x sub[k][NV*8] (width <= NV*8). A is read in place, rows past
// `rows` re-read the last row and are never stored; row i of the tile goes to crow[i] + col.
// Fully unrolled over the tile so that the 6 x NV accumulators stay in registers.
// sub[k][sstride] (sstride >= NV*8); bias (null: none): bias[i] is added to row i.
template <int NV>
void tile(int k, const float* a, int lda, const float* sub, int sstride, float* const* crow,
          int col, int rows, int width, const float* bias) {
  const float* row[kTileRows];
#pragma GCC unroll 6
  for (int i = 0; i < kTileRows; ++i) row[i] = a + int64_t(std::min(i, rows - 1)) * lda;
  __m256 acc[kTileRows][NV];
#pragma GCC unroll 6
  for (int i = 0; i < kTileRows; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  for (int kk = 0; kk < k; ++kk, sub += sstride) {
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(sub + v * 8);
#pragma GCC unroll 6
    for (int i = 0; i < kTileRows; ++i) {
      const __m256 ai = _mm256_broadcast_ss(row[i] + kk);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  const __m256i tail = first_lanes(width - (NV - 1) * 8);
#pragma GCC unroll 6
  for (int i = 0; i < kTileRows; ++i) {
    if (i >= rows) break;
    float* out = crow[i] + col;
    if (bias) {
      const __m256 b = _mm256_set1_ps(bias[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_add_ps(acc[i][v], b);
    }
#pragma GCC unroll 2
    for (int v = 0; v < NV - 1; ++v) _mm256_storeu_ps(out + v * 8, acc[i][v]);
    if (width == NV * 8) _mm256_storeu_ps(out + (NV - 1) * 8, acc[i][NV - 1]);
    else _mm256_maskstore_ps(out + (NV - 1) * 8, tail, acc[i][NV - 1]);
  }
}

}  // namespace

bool tile_sgemm(int m, int n, int k, const float* a, int lda, const float* b, int ldb,
                float beta, float* c, int ldc, const int64_t* c_rows) {
  if (n > kWideB || m < 1 || n < 1 || k < 1 || beta != 0.f) return false;
  thread_local std::vector<float> strip;
  const int tiles = (m + kTileRows - 1) / kTileRows;
  strip.resize(int64_t(k) * kStripCols);
  for (int n0 = 0; n0 < n; n0 += kStripCols) {
    const int width = std::min(kStripCols, n - n0);
    pack_strip(k, b + n0, ldb, width, strip.data());
    for (int t = 0; t < tiles; ++t) {
      const int rows = std::min(kTileRows, m - t * kTileRows);
      const float* at = a + int64_t(t) * kTileRows * lda;
      float* crow[kTileRows];
      for (int i = 0; i < rows; ++i) {
        const int64_t r = int64_t(t) * kTileRows + i;
        crow[i] = c + (c_rows ? c_rows[r] : r) * ldc + n0;
      }
      for (int s = 0; s * kSubCols < width; ++s) {
        const int w = std::min(kSubCols, width - s * kSubCols);
        const float* sub = strip.data() + int64_t(s) * k * kSubCols;
        if (w > 8) tile<2>(k, at, lda, sub, kSubCols, crow, s * kSubCols, rows, w, nullptr);
        else tile<1>(k, at, lda, sub, kSubCols, crow, s * kSubCols, rows, w, nullptr);
      }
    }
  }
  return true;
}

void strip_product(int m, int k, const float* a, int lda, const float* strip, int ldb, int width,
                   float* const* crow, const float* bias) {
  for (int t = 0; t * kTileRows < m; ++t) {
    const int rows = std::min(kTileRows, m - t * kTileRows);
    const float* at = a + int64_t(t) * kTileRows * lda;
    float* const* ct = crow + t * kTileRows;
    const float* bt = bias ? bias + t * kTileRows : nullptr;
    for (int s = 0; s * kSubCols < width; ++s) {  // the 16-column sub-strips, A from cache
      const int w = std::min(kSubCols, width - s * kSubCols);
      const float* sub = strip + s * kSubCols;
      if (w > 8) tile<2>(k, at, lda, sub, ldb, ct, s * kSubCols, rows, w, bt);
      else tile<1>(k, at, lda, sub, ldb, ct, s * kSubCols, rows, w, bt);
    }
  }
}

#else  // baseline: no kernel of our own, the BLAS does every product

bool tile_sgemm(int, int, int, const float*, int, const float*, int, float, float*, int,
                const int64_t*) {
  return false;
}

void strip_product(int, int, const float*, int, const float*, int, int, float* const*,
                   const float*) {}  // never called: kConvStrip == 0 here

#endif

MC_ISA_END
