// CBLAS entry points under one spelling, whichever BLAS the build links:
//   - OpenBLAS from the scipy-openblas32 wheel: every symbol carries the prefix "scipy_"
//     (its cblas.h declares scipy_cblas_sgemm, ...); BLAS_SYMBOL_PREFIX is set by CMake.
//   - MKL (MINICAFFE_BLAS_MKL) or a system CBLAS: plain names.
#pragma once


#if defined(MINICAFFE_BLAS_MKL)
#include <mkl.h>
#include <mkl_spblas.h>
#define MC_BLAS_VENDOR "mkl"
#elif defined(MINICAFFE_BLAS_OPENBLAS_WHEEL)
#include <cblas.h>  // the wheel's header declares the prefixed names (scipy_cblas_sgemm, ...)
#define MC_BLAS_VENDOR "openblas (scipy-openblas32 wheel)"
#define cblas_sgemm scipy_cblas_sgemm
#define cblas_dgemm scipy_cblas_dgemm
#define cblas_sgemv scipy_cblas_sgemv
#define cblas_dgemv scipy_cblas_dgemv
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

inline void blas_gemv(CBLAS_TRANSPOSE t, int rows, int cols, float alpha, const float* a, int lda,
                      const float* x, int incx, float beta, float* y, int incy) {
  cblas_sgemv(CblasRowMajor, t, rows, cols, alpha, a, lda, x, incx, beta, y, incy);
}

inline void blas_gemv(CBLAS_TRANSPOSE t, int rows, int cols, double alpha, const double* a,
                      int lda, const double* x, int incx, double beta, double* y, int incy) {
  cblas_dgemv(CblasRowMajor, t, rows, cols, alpha, a, lda, x, incx, beta, y, incy);
}

// A product with one row or one column of C as the matrix-vector product it is. Batch-1 fully
// connected layers are 1 x K x N GEMMs: OpenBLAS 0.3.34's Haswell kernels ran LeNet's ip1
// (1 x 800 x 500) in 113 us as a GEMM, against about 20 us for the same product with its
// SkylakeX GEMM or as a GEMV, which reads the matrix once in a stream. Returns false (nothing
// done) when neither m nor n is 1, or k is 0 (GEMV would leave C unscaled by beta).
template <typename T>
bool gemm_as_gemv(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda,
                  const T* b, int ldb, T beta, T* c, int ldc) {
  if (k == 0) return false;
  if (m == 1) {  // c[0][:] = op(B)^T x, x = row 0 of op(A)
    const int incx = ta ? lda : 1;
    if (tb) blas_gemv(CblasNoTrans, n, k, alpha, b, ldb, a, incx, beta, c, 1);  // B is n x k
    else blas_gemv(CblasTrans, k, n, alpha, b, ldb, a, incx, beta, c, 1);       // B is k x n
    return true;
  }
  if (n == 1) {  // c[:][0] = op(A) x, x = column 0 of op(B)
    const int incx = tb ? 1 : ldb;
    if (ta) blas_gemv(CblasTrans, k, m, alpha, a, lda, b, incx, beta, c, ldc);  // A is k x m
    else blas_gemv(CblasNoTrans, m, k, alpha, a, lda, b, incx, beta, c, ldc);   // A is m x k
    return true;
  }
  return false;
}

inline void serial_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a,
                        int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (gemm_as_gemv(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

inline void serial_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a,
                        int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  if (gemm_as_gemv(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) return;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace mc
