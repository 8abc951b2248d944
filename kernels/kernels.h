// minicaffe compiled kernels: lowering (im2col/col2im), dense and compacted GEMM, CSR x dense,
// MAX and AVE pooling.
// All arrays are C-contiguous (row-major); T is float (f32_*) or double (f64_*).
// Every entry point checks its arguments and throws std::invalid_argument naming the argument,
// its value and the rule it broke (pybind11 turns that into ValueError).
//
// The kernels are compiled once per instruction set (isa.h: baseline x86-64, AVX2+FMA,
// AVX-512) and reached through a table of function pointers, `active()`, chosen once at import
// from what the CPU reports (MINICAFFE_ISA or set_isa() force one). This header holds what all
// instruction sets share: the geometry types, the argument checks, the table and the runtime.
#pragma once

#include <cstdint>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

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
// Position of the first mask[t] outside [-1, bound), or -1.
int64_t first_bad_index(const int32_t* mask, int64_t n, int64_t bound);

// Kept filters and lowered rows of compacted convolution weights (conv_forward_nchw).
struct Kept {
  const int64_t* rows = nullptr;
  int64_t m_kept = 0, m_pad = 0;
  const int64_t* cols = nullptr;
  int64_t k = 0;
};

// One instruction set's kernels for one dtype; isa.h documents each entry.
template <typename T>
struct TypedKernels {
  void (*im2col_rows)(const T* x, int64_t N, const Geom& g, const int64_t* rows, int64_t n_rows,
                      T* cols, bool parallel);
  void (*col2im)(const T* cols, int64_t N, const Geom& g, T* x, bool parallel);
  void (*gemm)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* a,
               const T* b, T beta, T* c);
  void (*gemm_compact)(int64_t M, int64_t N, int64_t K, const T* a_packed, int64_t m_pad,
                       const int64_t* row_idx, int64_t m_kept, const int64_t* col_idx,
                       int64_t k_kept, const T* b, T* c);
  void (*conv_forward)(const T* x, int64_t N, const Geom& g, const T* a, int64_t m_pad,
                       int64_t k, const int64_t* row_idx, int64_t m_kept, int64_t M,
                       const int64_t* col_idx, T* out, int64_t block_bytes);
  void (*conv_forward_nchw)(const T* x, int64_t N, const Geom& g, int64_t group, const T* w,
                            int64_t M, const T* bias, T* y, int64_t block_bytes,
                            const Kept& kept);
  void (*conv_backward)(const T* x, const T* dy, int64_t N, const Geom& g, int64_t group,
                        const T* w, int64_t M, T* dw, T* db, T* dx, int64_t block_bytes);
  void (*linear_compact)(int64_t Nb, int64_t M, int64_t K, const T* x, const T* a_packed,
                         const int64_t* row_idx, int64_t m_kept, const int64_t* col_idx,
                         int64_t k_kept, T* out);
  void (*csrmm)(int64_t M, int64_t N, int64_t K, const int64_t* indptr, const int64_t* indices,
                const T* data, int64_t nnz, const T* b, T* c);
  void (*csrmm_t)(int64_t Nb, int64_t M, int64_t K, const int64_t* indptr,
                  const int64_t* indices, const T* data, int64_t nnz, const T* x, T* out);
  void (*max_pool_forward)(const T* x, int64_t planes, const PoolGeom& g, T* y, int32_t* mask);
  void (*max_pool_backward)(const T* dy, const int32_t* mask, int64_t planes,
                            const PoolGeom& g, T* dx);
  void (*ave_pool_forward)(const T* x, int64_t planes, const PoolGeom& g, T* y);
  void (*ave_pool_backward)(const T* dy, int64_t planes, const PoolGeom& g, T* dx);
  void (*relu_forward)(const T* x, int64_t n, T slope, T* y);
  void (*softmax_forward)(const T* x, int64_t outer, int64_t channels, int64_t inner, T* y);
  void (*add_bias_rows)(T* y, int64_t rows, int64_t cols, const T* bias);
};

// The instruction sets the kernels are compiled for, lowest first.
enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2 };
constexpr int kIsaCount = 3;
const char* isa_name(Isa isa);

// One instruction set's table (isa.h / table.cc).
struct Kernels {
  Isa isa;
  TypedKernels<float> f32;
  TypedKernels<double> f64;
  // The convolution forward's own float32 GEMM (tile_gemm.cc); false where it does not apply.
  bool (*tile_sgemm)(int m, int n, int k, const float* a, int lda, const float* b, int ldb,
                     float beta, float* c, int ldc, const int64_t* c_rows);
  bool has_tile_gemm;  // this instruction set has one (else the BLAS does every product)
  // c[m][n] = a[m][k] b[k][n] (float32, row-major) the way the convolution forwards multiply:
  // split over the threads as blas_gemm does, each share through tile_sgemm where it applies
  // (and tile_gemm_enabled()), else the BLAS.
  void (*forward_sgemm)(int m, int n, int k, const float* a, const float* b, float* c);
  int vector_bits;     // width of the vectors its kernels use
  // FP32 multiply-add throughput of the calling thread's core with vectors of vector_bits.
  double (*fma_gflops)(double seconds);

  template <typename T>
  const TypedKernels<T>& typed() const {
    if constexpr (sizeof(T) == 4) return f32;
    else return f64;
  }
};

// Instruction-set dispatch (runtime.cc). At load the best one that is both compiled in and
// supported by the CPU is active.
const Kernels& active();
bool isa_compiled(Isa isa);   // compiled into this build
bool isa_supported(Isa isa);  // compiled in and the CPU (and OS) can run it
// Makes `name` active; throws std::invalid_argument for an unknown name or one isa_supported
// rejects (running it would die on an illegal instruction).
void set_isa(const std::string& name);
std::vector<std::string> isa_names(bool supported_only);

// A forward pass bound once (program.cc): a list of kernel calls whose arrays and sizes were
// checked when they were added, run many times without converting or checking anything.
// A step returns false to stop the run (a guard whose weights changed since it was added).
class Program {
 public:
  using Step = std::function<bool()>;
  // Appends a step; returns its index.
  int64_t add(Step step);
  int64_t size() const { return int64_t(steps_.size()); }
  // Runs steps first..last (inclusive) in order; returns the index of a step that stopped the
  // run, or -1. An exception from step i propagates after failed_step() is set to i.
  int64_t run(int64_t first, int64_t last);
  int64_t failed_step() const { return failed_; }

 private:
  std::vector<Step> steps_;
  int64_t failed_ = -1;
};
// Whether the n bytes at a and b are equal (a guard's test: weights vs their snapshot).
bool same_bytes(const void* a, const void* b, int64_t n);

#if defined(MINICAFFE_BLAS_MKL)
// CSR (M, K) x b[K][N] -> c[M][N] through MKL's sparse BLAS (mkl_sparse_?_mm), for comparison.
template <typename T>
void csrmm_mkl(int64_t M, int64_t N, int64_t K, const int64_t* indptr, const int64_t* indices,
               const T* data, int64_t nnz, const T* b, T* c);
#endif

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
// Threads that blas_gemm splits a product over; 1 = let the BLAS thread itself.
int gemm_split_threads();
// Whether convolution forwards may use an instruction set's own GEMM: MINICAFFE_TILE_GEMM=0
// turns it off.
bool tile_gemm_enabled();
std::string blas_vendor();
std::string blas_version();
std::string openmp_version();  // "" without OpenMP
// Measured single-precision FMA peak of the calling thread's core, vectors of 128, 256 or 512
// bits (the instruction set with that width must be supported).
double peak_gflops(int vector_bits, double seconds);

}  // namespace mc
