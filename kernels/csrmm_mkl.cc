// CSR (M, K) x dense B (K, N) through MKL's sparse BLAS (mkl_sparse_?_mm), for comparison with
// our kernel (csrmm.cc); MKL builds only. MKL dispatches on the CPU itself, so this file is
// compiled once, outside the per-instruction-set objects.
#if defined(MINICAFFE_BLAS_MKL)
#include <algorithm>
#include <vector>

#include "blas.h"
#include "kernels.h"

namespace mc {
namespace {
sparse_status_t create_csr(sparse_matrix_t* A, MKL_INT M, MKL_INT K, MKL_INT* rs, MKL_INT* re,
                           MKL_INT* ci, float* v) {
  return mkl_sparse_s_create_csr(A, SPARSE_INDEX_BASE_ZERO, M, K, rs, re, ci, v);
}
sparse_status_t create_csr(sparse_matrix_t* A, MKL_INT M, MKL_INT K, MKL_INT* rs, MKL_INT* re,
                           MKL_INT* ci, double* v) {
  return mkl_sparse_d_create_csr(A, SPARSE_INDEX_BASE_ZERO, M, K, rs, re, ci, v);
}
sparse_status_t sparse_mm(sparse_matrix_t A, matrix_descr d, const float* b, MKL_INT N,
                          float* c) {
  return mkl_sparse_s_mm(SPARSE_OPERATION_NON_TRANSPOSE, 1.0f, A, d, SPARSE_LAYOUT_ROW_MAJOR, b,
                         N, N, 0.0f, c, N);
}
sparse_status_t sparse_mm(sparse_matrix_t A, matrix_descr d, const double* b, MKL_INT N,
                          double* c) {
  return mkl_sparse_d_mm(SPARSE_OPERATION_NON_TRANSPOSE, 1.0, A, d, SPARSE_LAYOUT_ROW_MAJOR, b, N,
                         N, 0.0, c, N);
}
}  // namespace

template <typename T>
void csrmm_mkl(int64_t M, int64_t N, int64_t K, const int64_t* indptr, const int64_t* indices,
               const T* data, int64_t nnz, const T* b, T* c) {
  const char* op = sizeof(T) == 4 ? "f32_csrmm_mkl" : "f64_csrmm_mkl";
  check_csr(op, M, K, indptr, indices, nnz);
  if (M == 0 || N == 0) return;
  if (nnz == 0) {
    std::fill(c, c + M * N, T(0));
    return;
  }
  std::vector<MKL_INT> ptr(indptr, indptr + M + 1), idx(indices, indices + nnz);
  std::vector<T> val(data, data + nnz);
  sparse_matrix_t A = nullptr;
  if (create_csr(&A, MKL_INT(M), MKL_INT(K), ptr.data(), ptr.data() + 1, idx.data(),
                 val.data()) != SPARSE_STATUS_SUCCESS)
    fail(op, "mkl_sparse_?_create_csr failed");
  matrix_descr descr;
  descr.type = SPARSE_MATRIX_TYPE_GENERAL;
  const sparse_status_t status = sparse_mm(A, descr, b, MKL_INT(N), c);
  mkl_sparse_destroy(A);
  if (status != SPARSE_STATUS_SUCCESS) fail(op, "mkl_sparse_?_mm failed (status ", status, ")");
}

template void csrmm_mkl<float>(int64_t, int64_t, int64_t, const int64_t*, const int64_t*,
                               const float*, int64_t, const float*, float*);
template void csrmm_mkl<double>(int64_t, int64_t, int64_t, const int64_t*, const int64_t*,
                                const double*, int64_t, const double*, double*);

}  // namespace mc
#endif
