// CBLAS entry points under one spelling, whichever BLAS the build links:
//   - OpenBLAS from the scipy-openblas32 wheel: every symbol carries the prefix "scipy_"
//     (its cblas.h declares scipy_cblas_sgemm, ...); BLAS_SYMBOL_PREFIX is set by CMake.
//   - MKL (MINICAFFE_BLAS_MKL) or a system CBLAS: plain names.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(MINICAFFE_BLAS_MKL)
#include <mkl.h>
#include <mkl_spblas.h>
#define MC_BLAS_VENDOR "mkl"
#elif defined(MINICAFFE_BLAS_OPENBLAS_WHEEL)
#include <cblas.h>  // the wheel's header declares the prefixed names (scipy_cblas_sgemm, ...)
#define MC_BLAS_VENDOR "openblas (scipy-openblas32 wheel)"
#define cblas_sgemm scipy_cblas_sgemm
#define cblas_dgemm scipy_cblas_dgemm
extern "C" {
void scipy_openblas_set_num_threads(int);
int scipy_openblas_get_num_threads(void);
char* scipy_openblas_get_config(void);
}
#else
#include <cblas.h>
#define MC_BLAS_VENDOR "system cblas"
#if defined(MINICAFFE_BLAS_OPENBLAS)
extern "C" {
void openblas_set_num_threads(int);
char* openblas_get_config(void);
}
#endif
#endif

namespace mc {

inline void serial_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a,
                        int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

inline void serial_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a,
                        int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Threads that blas_gemm splits a product over (runtime.cc); 1 = let the BLAS thread itself.
int gemm_split_threads();

// Our AVX-512 single-precision kernel (tile_gemm.cc): row-major C[m][n] = A B, row i of the
// product stored in row c_rows[i] of C (row i when c_rows is null). Returns false, computing
// nothing, where it does not apply (no AVX-512 in the build, beta != 0, an empty product, or
// B wider than it handles well); the caller then uses the BLAS.
bool tile_sgemm(int m, int n, int k, const float* a, int lda, const float* b, int ldb,
                float beta, float* c, int ldc, const int64_t* c_rows = nullptr);
bool tile_gemm_available();
// Whether convolution forwards use it (runtime.cc): MINICAFFE_TILE_GEMM=0 turns it off.
bool tile_gemm_enabled();

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

}  // namespace mc
