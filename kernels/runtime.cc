// Thread controls and a description of the build (BLAS vendor/version, target ISA).
#include <time.h>

#include <cstdlib>

#include <string>

#include "blas.h"
#include "kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mc {

void init_blas() {
#if defined(MINICAFFE_BLAS_MKL)
  // MKL's default threading layer is Intel OpenMP; ours is GNU OpenMP. One runtime per process
  // avoids two thread pools (and the mkl_gnu_thread layer ships in the mkl wheel).
  mkl_set_interface_layer(MKL_INTERFACE_LP64);
  mkl_set_threading_layer(MKL_THREADING_GNU);
#endif
}

namespace {
int g_threads = 0;        // what set_num_threads was given (0: not called yet)
int g_split_threads = 1;  // threads blas_gemm splits over (OpenBLAS builds)
}  // namespace

bool tile_gemm_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("MINICAFFE_TILE_GEMM");
    return tile_gemm_available() && !(v && std::string(v) == "0");
  }();
  return enabled;
}

int gemm_split_threads() {
#ifdef _OPENMP
  if (omp_in_parallel()) return 1;  // already inside one of our parallel regions
#endif
  return g_split_threads;
}

void set_num_threads(int n, int openmp_threads) {
  if (n < 1 || n > kMaxThreads)
    fail("set_num_threads", "n = ", n, "; expected 1 to ", kMaxThreads, " (MAX_THREADS)");
  if (openmp_threads > kMaxThreads)
    fail("set_num_threads", "openmp_threads = ", openmp_threads, "; expected 1 to ", kMaxThreads,
         " (MAX_THREADS)");
  if (openmp_threads < 1) openmp_threads = n;
  g_threads = n;
#ifdef _OPENMP
  omp_set_num_threads(openmp_threads);
#endif
#if defined(MINICAFFE_BLAS_MKL)
  mkl_set_num_threads(n);  // MKL runs on GNU OpenMP here (init_blas): already one pool
#else
  // OpenBLAS threads with pthreads of its own: when our OpenMP kernels use several threads,
  // keep OpenBLAS serial and split GEMMs over OpenMP (blas_gemm); when they are held to one
  // thread (another OpenMP runtime in the process spins), let OpenBLAS thread instead.
  const bool one_pool = openmp_threads > 1;
  g_split_threads = one_pool ? openmp_threads : 1;
#if defined(MINICAFFE_BLAS_OPENBLAS_WHEEL)
  scipy_openblas_set_num_threads(one_pool ? 1 : n);
#elif defined(MINICAFFE_BLAS_OPENBLAS)
  openblas_set_num_threads(one_pool ? 1 : n);
#endif
#endif
}

int get_blas_threads() {
#if defined(MINICAFFE_BLAS_MKL)
  return mkl_get_max_threads();
#elif defined(MINICAFFE_BLAS_OPENBLAS_WHEEL)
  return scipy_openblas_get_num_threads();
#else
  return -1;  // a system CBLAS does not say
#endif
}

// The thread count set_num_threads was given; OpenMP's default before the first call.
int get_num_threads() {
  if (g_threads > 0) return g_threads;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

namespace {

// Single-precision FMA throughput of one core (thread CPU time) for one vector width: 16
// independent accumulator chains cover the FMA latency on current x86 cores.
typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x16 __attribute__((vector_size(64)));

template <typename vec>
double fma_gflops(double seconds) {
  constexpr int lanes = sizeof(vec) / 4, chains = 16;
  vec acc[chains];
  for (int i = 0; i < chains; ++i) acc[i] = vec{} + float(i) * 1e-3f;
  const vec a = vec{} + 0.999999f, b = vec{} + 1e-7f;
  int64_t iters = 0;
  // CPU time of this thread: other load on a shared machine does not count against the core.
  auto now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  const double start = now();
  double elapsed = 0.0;
  do {
    for (int r = 0; r < 4096; ++r)
      for (int i = 0; i < chains; ++i) acc[i] = acc[i] * a + b;
    iters += 4096;
    elapsed = now() - start;
  } while (elapsed < seconds);
  float sink = 0;
  for (int i = 0; i < chains; ++i) sink += acc[i][0];
  volatile float keep = sink;  // keeps the loop from being optimised away
  (void)keep;
  return 2.0 * lanes * chains * double(iters) / elapsed / 1e9;
}

}  // namespace

double peak_gflops(int vector_bits, double seconds) {
  if (vector_bits == 256) return fma_gflops<f32x8>(seconds);
  if (vector_bits == 512) return fma_gflops<f32x16>(seconds);
  fail("peak_gflops", "vector_bits = ", vector_bits, "; expected 256 or 512");
}

std::string blas_vendor() { return MC_BLAS_VENDOR; }

std::string blas_version() {
#if defined(MINICAFFE_BLAS_MKL)
  char buf[256];
  mkl_get_version_string(buf, sizeof(buf));
  return buf;
#elif defined(MINICAFFE_BLAS_OPENBLAS_WHEEL)
  return scipy_openblas_get_config();
#elif defined(MINICAFFE_BLAS_OPENBLAS)
  return openblas_get_config();
#else
  return "unknown";
#endif
}

std::string isa() {
  std::string s;
#if defined(__AVX512F__)
  s = "avx512f";
#elif defined(__AVX2__)
  s = "avx2";
#elif defined(__AVX__)
  s = "avx";
#elif defined(__SSE4_2__)
  s = "sse4.2";
#elif defined(__x86_64__)
  s = "x86-64";
#elif defined(__aarch64__)
  s = "aarch64";
#else
  s = "generic";
#endif
#if defined(__FMA__)
  s += "+fma";
#endif
#if defined(MINICAFFE_NATIVE_ARCH)
  s += " (-march=native)";
#endif
#ifdef _OPENMP
  s += ", openmp " + std::to_string(_OPENMP);
#endif
  return s;
}

}  // namespace mc
