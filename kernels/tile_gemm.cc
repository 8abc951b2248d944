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

#if MC_ISA_LEVEL >= 2
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
template <int NV>
void tile(int k, const float* a, int lda, const float* strip, float* const* crow, int rows,
          __mmask16 last) {
  const float* row[kTileRows];
#pragma GCC unroll 8
  for (int i = 0; i < kTileRows; ++i) row[i] = a + int64_t(std::min(i, rows - 1)) * lda;
  __m512 acc[kTileRows][NV];
#pragma GCC unroll 8
  for (int i = 0; i < kTileRows; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int kk = 0; kk < k; ++kk, strip += NV * 16) {
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
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) {
      const __mmask16 mask = v == NV - 1 ? last : __mmask16(0xffff);
      _mm512_mask_storeu_ps(crow[i] + v * 16, mask, acc[i][v]);
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
        case 3: tile<3>(k, at, lda, strip.data(), crow, rows, last); break;
        case 2: tile<2>(k, at, lda, strip.data(), crow, rows, last); break;
        default: tile<1>(k, at, lda, strip.data(), crow, rows, last);
      }
    }
  }
  return true;
}

#else  // no kernel of our own for this instruction set: the BLAS does every product

bool tile_sgemm(int, int, int, const float*, int, const float*, int, float, float*, int,
                const int64_t*) {
  return false;
}

#endif

MC_ISA_END
