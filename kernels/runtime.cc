// Thread controls, the instruction-set dispatch and a description of the build (BLAS vendor
// and version, OpenMP).
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

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
    return !(v && std::string(v) == "0");
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

std::string openmp_version() {
#ifdef _OPENMP
  return std::to_string(_OPENMP);
#else
  return "";
#endif
}

// ---- instruction-set dispatch ------------------------------------------------------------

// The per-instruction-set tables this build has (CMake defines MC_HAVE_ISA_<NAME> for each
// object library it compiled).
namespace baseline {
const Kernels& table();
}
#if defined(MC_HAVE_ISA_AVX2)
namespace avx2 {
const Kernels& table();
}
#endif
#if defined(MC_HAVE_ISA_AVX512)
namespace avx512 {
const Kernels& table();
}
#endif

namespace {

const Kernels* compiled_table(Isa isa) {
  switch (isa) {
    case Isa::baseline: return &baseline::table();
#if defined(MC_HAVE_ISA_AVX2)
    case Isa::avx2: return &avx2::table();
#endif
#if defined(MC_HAVE_ISA_AVX512)
    case Isa::avx512: return &avx512::table();
#endif
    default: return nullptr;
  }
}

// The CPU features each instruction set needs, as "name", and whether this CPU (and its OS)
// has them: libgcc's __builtin_cpu_supports reads CPUID and, for AVX and AVX-512, checks with
// XGETBV that the OS saves the wider registers. (It takes string literals only, hence the macro.)
struct Feature {
  const char* name;
  bool present;
};

std::vector<Feature> features(Isa isa) {
  std::vector<Feature> f;
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
#define MC_FEATURE(name) f.push_back({name, bool(__builtin_cpu_supports(name))})
  if (isa >= Isa::avx2) {
    MC_FEATURE("avx");
    MC_FEATURE("avx2");
    MC_FEATURE("fma");
    MC_FEATURE("bmi");
    MC_FEATURE("bmi2");
  }
  if (isa >= Isa::avx512) {
    MC_FEATURE("avx512f");
    MC_FEATURE("avx512bw");
    MC_FEATURE("avx512dq");
    MC_FEATURE("avx512vl");
    MC_FEATURE("avx512cd");
  }
#undef MC_FEATURE
#else
  if (isa != Isa::baseline) f.push_back({"x86-64", false});
#endif
  return f;
}

bool cpu_runs(Isa isa) {
  for (const Feature& f : features(isa))
    if (!f.present) return false;
  return true;
}

// "lacks avx512f, avx512bw".
std::string missing_features(Isa isa) {
  std::string s;
  for (const Feature& f : features(isa))
    if (!f.present) s += (s.empty() ? "lacks " : ", ") + std::string(f.name);
  return s;
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

std::string join_widths() {
  std::string s;
  for (int i = 0; i < kIsaCount; ++i)
    if (const Kernels* k = compiled_table(Isa(i)))
      s += (s.empty() ? "" : ", ") + std::to_string(k->vector_bits);
  return s;
}

// The best supported table, chosen once when the module loads.
const Kernels* best_table() {
  for (int i = kIsaCount - 1; i >= 0; --i)
    if (isa_supported(Isa(i))) return compiled_table(Isa(i));
  return compiled_table(Isa::baseline);
}

std::atomic<const Kernels*> g_active{nullptr};

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::baseline: return "baseline";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

bool isa_compiled(Isa isa) { return compiled_table(isa) != nullptr; }

bool isa_supported(Isa isa) { return isa_compiled(isa) && cpu_runs(isa); }

const Kernels& active() {
  const Kernels* k = g_active.load(std::memory_order_relaxed);
  if (!k) {
    k = best_table();
    g_active.store(k, std::memory_order_relaxed);
  }
  return *k;
}

std::vector<std::string> isa_names(bool supported_only) {
  std::vector<std::string> names;
  for (int i = 0; i < kIsaCount; ++i)
    if (supported_only ? isa_supported(Isa(i)) : isa_compiled(Isa(i)))
      names.push_back(isa_name(Isa(i)));
  return names;
}

void set_isa(const std::string& name) {
  for (int i = 0; i < kIsaCount; ++i) {
    if (name != isa_name(Isa(i))) continue;
    if (!isa_compiled(Isa(i)))
      fail("set_isa", "'", name, "' is not compiled into this build (compiled: ",
           join(isa_names(false)), ")");
    if (!cpu_runs(Isa(i)))
      fail("set_isa", "this CPU cannot run '", name, "' (", missing_features(Isa(i)),
           "); it can run: ", join(isa_names(true)));
    g_active.store(compiled_table(Isa(i)), std::memory_order_relaxed);
    return;
  }
  fail("set_isa", "unknown instruction set '", name, "'; expected one of baseline, avx2, avx512");
}

double peak_gflops(int vector_bits, double seconds) {
  for (int i = 0; i < kIsaCount; ++i) {
    const Kernels* k = compiled_table(Isa(i));
    if (!k || k->vector_bits != vector_bits) continue;
    if (!cpu_runs(Isa(i)))
      fail("peak_gflops", "vector_bits = ", vector_bits, " needs the ", isa_name(Isa(i)),
           " instruction set, which this CPU lacks");
    return k->fma_gflops(seconds);
  }
  fail("peak_gflops", "vector_bits = ", vector_bits, "; expected one of ",
       join_widths(), " (the vector widths compiled into this build)");
}

}  // namespace mc
