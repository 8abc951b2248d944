// Thread controls and a description of the build (BLAS vendor/version, target ISA).
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

void set_num_threads(int n) {
  if (n < 1) fail("set_num_threads", "n = ", n, "; expected >= 1");
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
#if defined(MINICAFFE_BLAS_MKL)
  mkl_set_num_threads(n);
#elif defined(MINICAFFE_BLAS_OPENBLAS_WHEEL)
  scipy_openblas_set_num_threads(n);
#elif defined(MINICAFFE_BLAS_OPENBLAS)
  openblas_set_num_threads(n);
#endif
}

int get_num_threads() {
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
