// minicaffe compiled kernels: lowering (im2col/col2im), dense and compacted GEMM, CSR x dense,
// MAX and AVE pooling.
// All arrays are C-contiguous (row-major); T is float (f32_*) or double (f64_*).
// Every entry point checks its arguments and throws std::invalid_argument naming the argument,
// its value and the rule it broke (pybind11 turns that into ValueError).
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mc {

// Convolution geometry of one image, as minicaffe.ops.ConvGeometry.
struct Geom {
  int64_t C, H, W, kh, kw, ph, pw, sh, sw, dh, dw;
  int64_t oh() const { return (H + 2 * ph - (dh * (kh - 1) + 1)) / sh + 1; }
  int64_t ow() const { return (W + 2 * pw - (dw * (kw - 1) + 1)) / sw + 1; }
  int64_t rows() const { return C * kh * kw; }  // K of the lowered GEMM
  int64_t cols() const { return oh() * ow(); }  // output pixels per image
};

// Builds "op: what" messages and throws std::invalid_argument.
template <typename... Parts>
[[noreturn]] void fail(const char* op, const Parts&... parts) {
  std::ostringstream msg;
  msg << op << ": ";
  (msg << ... << parts);
  throw std::invalid_argument(msg.str());
}

void check_geom(const char* op, const Geom& g);

// Pooling geometry of one plane, as minicaffe.ops.pooling passes it; (oh, ow) come from the
// Pooling layer (Caffe's ceil rule).
struct PoolGeom {
  int64_t H, W, kh, kw, ph, pw, sh, sw, oh, ow;
};
void check_pool_geom(const char* op, const PoolGeom& g);
void check_size(const char* op, const char* name, int64_t value);  // value >= 0
// idx[0..n) strictly increasing inside [0, bound).
void check_index_list(const char* op, const char* name, const int64_t* idx, int64_t n,
                      int64_t bound);
// Kept filters of compacted weights: m_kept <= m_pad <= M and rows[0..m_kept) an index list.
void check_kept_rows(const char* op, const char* name, const int64_t* rows, int64_t m_kept,
                     int64_t m_pad, int64_t M);
// indptr[0..M] starts at 0, never decreases, ends at nnz; indices of each row strictly increase
// inside [0, K).
void check_csr(const char* op, int64_t M, int64_t K, const int64_t* indptr,
               const int64_t* indices, int64_t nnz);

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
struct Kept {
  const int64_t* rows = nullptr;
  int64_t m_kept = 0, m_pad = 0;
  const int64_t* cols = nullptr;
  int64_t k = 0;
};
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

#if defined(MINICAFFE_BLAS_MKL)
// The same product through MKL's sparse BLAS (mkl_sparse_?_mm), for comparison.
template <typename T>
void csrmm_mkl(int64_t M, int64_t N, int64_t K, const int64_t* indptr, const int64_t* indices,
               const T* data, int64_t nnz, const T* b, T* c);
#endif

// MAX pooling of `planes` (n, c) planes x[planes][H][W] -> y[planes][oh][ow] and
// mask[planes][oh][ow] = h*W + w of the first maximum of each window clipped to the image
// (-inf and -1 for a window wholly past the image).
template <typename T>
void max_pool_forward(const T* x, int64_t planes, const PoolGeom& g, T* y, int32_t* mask);

// Position of the first mask[t] outside [-1, bound), or -1.
int64_t first_bad_index(const int32_t* mask, int64_t n, int64_t bound);

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

// Thread controls and build description (runtime.cc). init_blas runs once at import.
void init_blas();
// Most threads set_num_threads accepts (minicaffe.ops.native.MAX_THREADS is the same number):
// libgomp could not create 100000 threads and the next parallel region crashed.
constexpr int kMaxThreads = 1024;
// BLAS threads = n; OpenMP threads of our kernels = openmp_threads (n when < 1).
// Throws std::invalid_argument unless 1 <= n <= kMaxThreads and openmp_threads <= kMaxThreads.
void set_num_threads(int n, int openmp_threads = -1);
int get_num_threads();
int get_blas_threads();  // threads of the BLAS itself (1 in the one-pool mode); -1 unknown
std::string blas_vendor();
std::string blas_version();
std::string isa();
// Measured single-precision FMA peak of the calling thread's core, vectors of 256 or 512 bits.
double peak_gflops(int vector_bits, double seconds);

}  // namespace mc
