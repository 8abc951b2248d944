// One instruction set's table of entry points (kernels.h, struct Kernels), and its FMA peak.
#include <time.h>

#include "isa.h"

MC_ISA_BEGIN

namespace {

// Single-precision multiply-add throughput of one core (thread CPU time) with this
// instruction set's vectors: independent accumulator chains cover the FMA latency on current
// x86 cores (latency 4, two pipes: 8 needed). 16 chains with AVX-512's 32 registers; 12 with
// the 16 of AVX2 and SSE, where 16 chains and the two constants spilled to the stack (the
// 256-bit peak then read 64 instead of about 115 GFLOP/s).
typedef float vec __attribute__((vector_size(kVectorBytes)));

double fma_gflops(double seconds) {
  constexpr int lanes = kVectorBytes / 4, chains = MC_ISA_LEVEL == 2 ? 16 : 12;
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

template <typename T>
constexpr TypedKernels<T> typed() {
  return {&im2col_rows<T>,      &col2im<T>,           &gemm<T>,
          &gemm_compact<T>,     &conv_forward<T>,     &conv_forward_nchw<T>,
          &conv_backward<T>,    &linear_compact<T>,   &csrmm<T>,
          &csrmm_t<T>,          &max_pool_forward<T>, &max_pool_backward<T>,
          &ave_pool_forward<T>, &ave_pool_backward<T>, &relu_forward<T>,
          &softmax_forward<T>,  &add_bias_rows<T>};
}

void forward_sgemm(int m, int n, int k, const float* a, const float* b, float* c) {
  blas_gemm<float, true>(false, false, m, n, k, 1.f, a, k, b, n, 0.f, c, n);
}

const Kernels kTable = {MC_ISA_ENUM,  typed<float>(), typed<double>(),  &tile_sgemm,
                        kHasTileGemm, &forward_sgemm, kVectorBytes * 8, &fma_gflops};

}  // namespace

const Kernels& table() { return kTable; }

MC_ISA_END
