// Dense GEMM through CBLAS, and the compacted (SSL) GEMMs for convolution and fully connected.
#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "isa.h"

MC_ISA_BEGIN
namespace {

void check_blas_dim(const char* op, const char* name, int64_t v) {
  check_size(op, name, v);
  if (v > INT_MAX) fail(op, name, " = ", v, "; BLAS takes 32-bit sizes (at most ", INT_MAX, ")");
}

// Kept rows (filters / outputs) and kept columns (inputs) of an (M, K) weight matrix; col_idx
// may be null (the caller passes the kept part of B already).
void check_kept_lists(const char* op, int64_t M, int64_t K, const int64_t* row_idx,
                      int64_t m_kept, const int64_t* col_idx, int64_t k_kept) {
  if (m_kept > M) fail(op, "m_kept = ", m_kept, " exceeds M = ", M);
  if (k_kept > K) fail(op, "k_kept = ", k_kept, " exceeds K = ", K);
  check_size(op, "m_kept", m_kept);
  check_size(op, "k_kept", k_kept);
  check_index_list(op, "row_idx", row_idx, m_kept, M);
  if (col_idx) check_index_list(op, "col_idx", col_idx, k_kept, K);
}

// dst[t][N] = src[idx[t]][N]: the kept rows of a row-major matrix, in order.
template <typename T>
void gather_rows(const T* src, const int64_t* idx, int64_t n, int64_t N, T* dst) {
#pragma omp parallel for schedule(static) if (n * N > (1 << 16))
  for (int64_t t = 0; t < n; ++t) std::memcpy(dst + t * N, src + idx[t] * N, N * sizeof(T));
}

// Rows of c[M][N] that row_idx (strictly increasing) does not list are set to 0.
template <typename T>
void zero_other_rows(T* c, int64_t M, int64_t N, const int64_t* row_idx, int64_t m_kept) {
  int64_t next = 0;
  for (int64_t t = 0; t <= m_kept; ++t) {
    const int64_t end = t < m_kept ? row_idx[t] : M;
    if (end > next) std::fill(c + next * N, c + end * N, T(0));
    next = end + 1;
  }
}

// c holds m_kept computed rows at its top; move row t to row row_idx[t] and zero the rest.
// row_idx is strictly increasing so row_idx[t] >= t: moving from the last row down never
// overwrites a row that is still to be moved.
template <typename T>
void spread_rows(T* c, int64_t M, int64_t N, const int64_t* row_idx, int64_t m_kept) {
  for (int64_t t = m_kept - 1; t >= 0; --t)
    if (row_idx[t] != t) std::memmove(c + row_idx[t] * N, c + t * N, N * sizeof(T));
  zero_other_rows(c, M, N, row_idx, m_kept);
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* a,
          const T* b, T beta, T* c) {
  const char* op = sizeof(T) == 4 ? "f32_gemm" : "f64_gemm";
  check_blas_dim(op, "M", M);
  check_blas_dim(op, "N", N);
  check_blas_dim(op, "K", K);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == T(0)) {  // BLAS would still read c when beta == 0; define it as 0.
    if (beta == T(0)) std::fill(c, c + M * N, T(0));
    else for (int64_t t = 0; t < M * N; ++t) c[t] *= beta;
    return;
  }
  const int lda = int(trans_a ? M : K), ldb = int(trans_b ? K : N);
  blas_gemm(trans_a, trans_b, int(M), int(N), int(K), alpha, a, lda, b, ldb, beta, c, int(N));
}

template <typename T>
void gemm_compact(int64_t M, int64_t N, int64_t K, const T* a_packed, int64_t m_pad,
                  const int64_t* row_idx, int64_t m_kept, const int64_t* col_idx, int64_t k_kept,
                  const T* b, T* c) {
  const char* op = sizeof(T) == 4 ? "f32_gemm_compact" : "f64_gemm_compact";
  check_blas_dim(op, "M", M);
  check_blas_dim(op, "N", N);
  check_blas_dim(op, "K", K);
  check_kept_lists(op, M, K, row_idx, m_kept, col_idx, k_kept);
  if (m_pad < m_kept || m_pad > M)
    fail(op, "m_pad = ", m_pad, "; expected m_kept <= m_pad <= M (", m_kept, " .. ", M, ")");
  if (m_kept == 0 || k_kept == 0 || N == 0) {
    std::fill(c, c + M * N, T(0));
    return;
  }
  std::vector<T> gathered;
  const T* bk = b;
  if (col_idx) {  // fully connected style input: pick the kept rows of the full B first
    gathered.resize(k_kept * N);
    gather_rows(b, col_idx, k_kept, N, gathered.data());
    bk = gathered.data();
  }
  blas_gemm(false, false, int(m_pad), int(N), int(k_kept), T(1), a_packed, int(k_kept), bk,
            int(N), T(0), c, int(N));
  if (m_kept < M) spread_rows(c, M, N, row_idx, m_kept);
}

template <typename T>
void conv_forward(const T* x, int64_t N, const Geom& g, const T* a, int64_t m_pad, int64_t k,
                  const int64_t* row_idx, int64_t m_kept, int64_t M, const int64_t* col_idx,
                  T* out, int64_t block_bytes) {
  const char* op = sizeof(T) == 4 ? "f32_conv_forward" : "f64_conv_forward";
  check_geom(op, g);
  check_size(op, "N", N);
  check_blas_dim(op, "M", M);
  check_blas_dim(op, "k", k);
  if (row_idx) {
    check_kept_rows(op, "row_idx", row_idx, m_kept, m_pad, M);
  } else if (m_pad != M || m_kept != M) {
    fail(op, "a has ", m_pad, " rows; expected M = ", M, " without row_idx");
  }
  if (col_idx) {
    if (k > g.rows()) fail(op, "k = ", k, " exceeds C*kh*kw = ", g.rows());
    check_index_list(op, "col_idx", col_idx, k, g.rows());
  } else if (k != g.rows()) {
    fail(op, "a has ", k, " columns; expected C*kh*kw = ", g.rows(), " without col_idx");
  }
  const int64_t P = g.cols(), ncols = N * P;
  check_blas_dim(op, "N*oh*ow", ncols);
  if (N == 0 || M == 0) return;
  if (m_kept == 0 || k == 0) {
    std::fill(out, out + M * ncols, T(0));
    return;
  }
  const int64_t per_image = k * P * int64_t(sizeof(T));
  const int64_t nb = std::max<int64_t>(1, std::min<int64_t>(N, block_bytes / per_image));
  thread_local std::vector<T> scratch;
  scratch.resize(k * nb * P);
  // Compacted weights: each GEMM row is stored straight into its filter's row of out, so
  // nothing is moved afterwards. The zero padding rows (m_pad - m_kept <= M - m_kept) go to
  // removed filters' rows, which are zeroed after the last block anyway.
  std::vector<int64_t> out_row;
  if (row_idx) {
    out_row.assign(row_idx, row_idx + m_kept);
    for (int64_t r = 0, t = 0; int64_t(out_row.size()) < m_pad; ++r) {
      if (t < m_kept && row_idx[t] == r) ++t;
      else out_row.push_back(r);
    }
  }
  const int64_t image = g.C * g.H * g.W;
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t n = std::min(nb, N - n0), w = n * P;
    im2col_rows<T>(x + n0 * image, n, g, col_idx, k, scratch.data());
    blas_gemm<T, true>(false, false, int(m_pad), int(w), int(k), T(1), a, int(k),
                       scratch.data(), int(w), T(0), out + n0 * P, int(ncols),
                       row_idx ? out_row.data() : nullptr);
  }
  if (row_idx && m_kept < M) zero_other_rows(out, M, ncols, row_idx, m_kept);
}

template <typename T>
void linear_compact(int64_t Nb, int64_t M, int64_t K, const T* x, const T* a_packed,
                    const int64_t* row_idx, int64_t m_kept, const int64_t* col_idx,
                    int64_t k_kept, T* out) {
  const char* op = sizeof(T) == 4 ? "f32_linear_compact" : "f64_linear_compact";
  check_blas_dim(op, "N", Nb);
  check_blas_dim(op, "M", M);
  check_blas_dim(op, "K", K);
  check_kept_lists(op, M, K, row_idx, m_kept, col_idx, k_kept);
  if (m_kept == 0 || k_kept == 0 || Nb == 0) {
    std::fill(out, out + Nb * M, T(0));
    return;
  }
  // xg[Nb][k_kept] = kept inputs of each sample.
  std::vector<T> xg(Nb * k_kept);
#pragma omp parallel for schedule(static) if (Nb * k_kept > (1 << 16))
  for (int64_t n = 0; n < Nb; ++n)
    for (int64_t t = 0; t < k_kept; ++t) xg[n * k_kept + t] = x[n * K + col_idx[t]];
  if (m_kept == M) {
    blas_gemm(false, true, int(Nb), int(M), int(k_kept), T(1), xg.data(), int(k_kept), a_packed,
              int(k_kept), T(0), out, int(M));
    return;
  }
  std::vector<T> y(Nb * m_kept);
  blas_gemm(false, true, int(Nb), int(m_kept), int(k_kept), T(1), xg.data(), int(k_kept),
            a_packed, int(k_kept), T(0), y.data(), int(m_kept));
  std::fill(out, out + Nb * M, T(0));
  for (int64_t n = 0; n < Nb; ++n)
    for (int64_t t = 0; t < m_kept; ++t) out[n * M + row_idx[t]] = y[n * m_kept + t];
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*,
                          const float*, float, float*);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*,
                           const double*, double, double*);
template void gemm_compact<float>(int64_t, int64_t, int64_t, const float*, int64_t,
                                  const int64_t*, int64_t, const int64_t*, int64_t, const float*,
                                  float*);
template void gemm_compact<double>(int64_t, int64_t, int64_t, const double*, int64_t,
                                   const int64_t*, int64_t, const int64_t*, int64_t, const double*,
                                   double*);
template void conv_forward<float>(const float*, int64_t, const Geom&, const float*, int64_t,
                                  int64_t, const int64_t*, int64_t, int64_t, const int64_t*,
                                  float*, int64_t);
template void conv_forward<double>(const double*, int64_t, const Geom&, const double*, int64_t,
                                   int64_t, const int64_t*, int64_t, int64_t, const int64_t*,
                                   double*, int64_t);
template void linear_compact<float>(int64_t, int64_t, int64_t, const float*, const float*,
                                    const int64_t*, int64_t, const int64_t*, int64_t, float*);
template void linear_compact<double>(int64_t, int64_t, int64_t, const double*, const double*,
                                     const int64_t*, int64_t, const int64_t*, int64_t, double*);

MC_ISA_END
