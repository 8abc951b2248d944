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

}  // namespace mc
