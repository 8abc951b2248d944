// CSR (M, K) x dense B (K, N) -> C (M, N), our OpenMP kernel (MKL's: csrmm_mkl.cc).
#include <algorithm>
#include <vector>

#include "isa.h"

#ifdef _OPENMP
#include <omp.h>
#endif

MC_ISA_BEGIN
namespace {

// One vector register of T for this instruction set (SSE2 16 bytes, AVX2 32, AVX-512 64),
// loadable from any T-aligned address (GCC/Clang vector extension). A vector wider than the
// instruction set's registers (what a fixed 64 bytes was on AVX2 and SSE2) is split by the
// compiler into pieces that it keeps in memory, not in registers.
template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(kVectorBytes), aligned(sizeof(T))));
  static constexpr int lanes = kVectorBytes / sizeof(T);
};

// Accumulator vectors of one column block: 256 bytes of C per row on AVX-512 and AVX2 (four
// zmm, eight ymm: half or all of AVX2's sixteen registers), 128 on SSE2 (eight of sixteen xmm).
constexpr int kBlockVectors = MC_ISA_LEVEL == 2 ? 4 : 8;

// Rows m0..m1 of C, V*lanes columns: c[m - m0][:] (row stride ldc) = sum over the row's nonzeros t
// of data[t] * b[indices[t]][:] (row stride ldb). The accumulators stay in vector registers.
// With fewer than four vectors per row, consecutive nonzeros go to U separate accumulator sets,
// so that enough independent FMAs are in flight to cover the FMA latency.
template <typename T, int V>
inline void rows_block(const int64_t* indptr, const int64_t* indices, const T* data, const T* b,
                       int64_t ldb, T* c, int64_t ldc, int64_t m0, int64_t m1) {
  typedef typename Vec<T>::type vec;
  constexpr int U = V >= 4 ? 1 : (V == 1 ? 4 : 2);
  for (int64_t m = m0; m < m1; ++m) {
    vec acc[U][V];
    for (int p = 0; p < U; ++p)
      for (int u = 0; u < V; ++u) acc[p][u] = vec{};
    int64_t t = indptr[m];
    const int64_t end = indptr[m + 1];
    for (; t + U <= end; t += U) {
      for (int p = 0; p < U; ++p) {
        const T v = data[t + p];
        const vec* br = reinterpret_cast<const vec*>(b + indices[t + p] * ldb);
        for (int u = 0; u < V; ++u) acc[p][u] += v * br[u];
      }
    }
    for (; t < end; ++t) {
      const T v = data[t];
      const vec* br = reinterpret_cast<const vec*>(b + indices[t] * ldb);
      for (int u = 0; u < V; ++u) acc[0][u] += v * br[u];
    }
    for (int p = 1; p < U; ++p)
      for (int u = 0; u < V; ++u) acc[0][u] += acc[p][u];
    vec* cr = reinterpret_cast<vec*>(c + (m - m0) * ldc);
    for (int u = 0; u < V; ++u) cr[u] = acc[0][u];
  }
}

// b[0..K)[j0 .. j0+w) copied into a contiguous K x width panel, zero-padded on the right.
template <typename T>
void pack_panel(const T* b, int64_t K, int64_t N, int64_t j0, int64_t w, int64_t width,
                std::vector<T>* panel) {
  panel->assign(K * width, T(0));
  for (int64_t k = 0; k < K; ++k)
    std::copy(b + k * N + j0, b + k * N + j0 + w, panel->data() + k * width);
}

// rows_block with a run-time V in 1..kBlockVectors.
template <typename T, int V = kBlockVectors>
void rows_block_v(int v, const int64_t* indptr, const int64_t* indices, const T* data, const T* b,
                  int64_t ldb, T* c, int64_t ldc, int64_t m0, int64_t m1) {
  if constexpr (V > 1) {
    if (v < V) {
      rows_block_v<T, V - 1>(v, indptr, indices, data, b, ldb, c, ldc, m0, m1);
      return;
    }
  }
  rows_block<T, V>(indptr, indices, data, b, ldb, c, ldc, m0, m1);
}

// Columns j0 .. j0+width of C; the thread computing it also writes columns lo .. j0.
struct Block {
  int64_t j0, width, lo;
};

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Sizes of a CSR (M, K) times a dense operand with N columns (or N rows), then the CSR itself.
void check_csr_product(const char* op, int64_t M, int64_t N, int64_t K, const int64_t* indptr,
                       const int64_t* indices, int64_t nnz) {
  check_size(op, "M", M);
  check_size(op, "N", N);
  check_size(op, "K", K);
  check_size(op, "nnz", nnz);
  check_csr(op, M, K, indptr, indices, nnz);
}

}  // namespace

template <typename T>
void csrmm(int64_t M, int64_t N, int64_t K, const int64_t* indptr, const int64_t* indices,
           const T* data, int64_t nnz, const T* b, T* c) {
  const char* op = sizeof(T) == 4 ? "f32_csrmm" : "f64_csrmm";
  check_csr_product(op, M, N, K, indptr, indices, nnz);
  if (M == 0 || N == 0) return;
  // Column blocks of kBlockVectors registers of accumulators (256 bytes: 64 floats / 32
  // doubles on AVX-512 and AVX2), and a K x 256 B panel of B that stays in L2 while a chunk of
  // rows reuses it.
  constexpr int LANES = Vec<T>::lanes, WIDE = kBlockVectors * LANES;
  // Two ways to share the work. Many column blocks (large batches): threads take whole blocks
  // (dynamic), each B panel is read by one thread. Few blocks (13x13 images, one image): each
  // thread takes a contiguous range of columns (all rows), so the part of B it reads, about
  // K x N/threads, fits its own L2; splitting rows instead had every thread stream all of B
  // (2304 x 169 floats for AlexNet conv3, 1.5 MB) through the shared L3.
  const int threads = max_threads();
  const int64_t full_blocks = N / WIDE + (N % WIDE != 0);
  const bool by_blocks = threads == 1 || full_blocks >= 4 * threads;
  const int64_t ranges = by_blocks ? 1 : std::min<int64_t>(threads, (N + LANES - 1) / LANES);
  // tasks[q]: the blocks of range q; a block may rewrite columns down to `lo` (its own range).
  std::vector<std::vector<Block>> tasks(by_blocks ? full_blocks : ranges);
  for (int64_t q = 0; q < ranges; ++q) {
    const int64_t lo = N * q / ranges / LANES * LANES;
    const int64_t hi = q + 1 == ranges ? N : N * (q + 1) / ranges / LANES * LANES;
    for (int64_t j0 = lo; j0 < hi; j0 += WIDE) {
      const Block blk{j0, std::min<int64_t>(WIDE, hi - j0), threads == 1 ? 0 : by_blocks ? j0 : lo};
      tasks[by_blocks ? j0 / WIDE : q].push_back(blk);
    }
  }
  const int64_t m0 = 0, m1 = M;
  auto task = [&](const Block& blk) {
    thread_local std::vector<T> panel, tile;
    if (blk.width == WIDE) {
      // Each B element is read about (nonzeros of the chunk) / K times; when that is more
      // than a couple, copy the K x WIDE panel to a contiguous buffer first: the nonzeros
      // then read consecutive lines of one small array instead of K rows a whole B row
      // apart (TLB and prefetch friendly).
      if (N * int64_t(sizeof(T)) >= 4096 && indptr[m1] - indptr[m0] >= 4 * K) {
        pack_panel(b, K, N, blk.j0, WIDE, WIDE, &panel);
        rows_block<T, kBlockVectors>(indptr, indices, data, panel.data(), WIDE,
                                     c + m0 * N + blk.j0, N, m0, m1);
      } else {
        rows_block<T, kBlockVectors>(indptr, indices, data, b + blk.j0, N, c + m0 * N + blk.j0,
                                     N, m0, m1);
      }
      return;
    }
    // Remainder: V vectors; a width that is not a whole number of vectors runs on a
    // zero-padded panel into a scratch tile, then the real columns are copied out.
    const int V = int((blk.width + LANES - 1) / LANES);
    const int64_t width = V * LANES;
    if (width == blk.width) {
      rows_block_v<T>(V, indptr, indices, data, b + blk.j0, N, c + m0 * N + blk.j0, N, m0, m1);
      return;
    }
    const int64_t start = blk.j0 + blk.width - width;
    if (start >= blk.lo) {
      // This thread wrote the columns left of the block: it writes the V vectors ending at
      // the block's right edge, some of them again (same values), instead of packing a K-row
      // panel for a few columns; at 13x13 outputs that copy was a third of the time.
      rows_block_v<T>(V, indptr, indices, data, b + start, N, c + m0 * N + start, N, m0, m1);
      return;
    }
    pack_panel(b, K, N, blk.j0, blk.width, width, &panel);
    tile.resize((m1 - m0) * width);
    rows_block_v<T>(V, indptr, indices, data, panel.data(), width, tile.data(), width, m0, m1);
    for (int64_t m = m0; m < m1; ++m)
      std::copy(tile.data() + (m - m0) * width, tile.data() + (m - m0) * width + blk.width,
                c + m * N + blk.j0);
  };
  const bool parallel = threads > 1 && nnz * N > (1 << 14);
  const int64_t n_tasks = int64_t(tasks.size());
  if (by_blocks) {
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
    for (int64_t q = 0; q < n_tasks; ++q)
      for (const Block& blk : tasks[q]) task(blk);
  } else {
#pragma omp parallel for schedule(static, 1) if (parallel)
    for (int64_t q = 0; q < n_tasks; ++q)
      for (const Block& blk : tasks[q]) task(blk);
  }
}

template <typename T>
void csrmm_t(int64_t Nb, int64_t M, int64_t K, const int64_t* indptr, const int64_t* indices,
             const T* data, int64_t nnz, const T* x, T* out) {
  const char* op = sizeof(T) == 4 ? "f32_csrmm_t" : "f64_csrmm_t";
  check_csr_product(op, M, Nb, K, indptr, indices, nnz);
#pragma omp parallel for collapse(2) schedule(static) if (Nb * nnz > (1 << 15))
  for (int64_t n = 0; n < Nb; ++n) {
    for (int64_t m = 0; m < M; ++m) {
      const T* xr = x + n * K;
      T acc = T(0);
      for (int64_t t = indptr[m]; t < indptr[m + 1]; ++t) acc += data[t] * xr[indices[t]];
      out[n * M + m] = acc;
    }
  }
}

template void csrmm<float>(int64_t, int64_t, int64_t, const int64_t*, const int64_t*, const float*,
                           int64_t, const float*, float*);
template void csrmm<double>(int64_t, int64_t, int64_t, const int64_t*, const int64_t*,
                            const double*, int64_t, const double*, double*);
template void csrmm_t<float>(int64_t, int64_t, int64_t, const int64_t*, const int64_t*,
                             const float*, int64_t, const float*, float*);
template void csrmm_t<double>(int64_t, int64_t, int64_t, const int64_t*, const int64_t*,
                              const double*, int64_t, const double*, double*);

MC_ISA_END
