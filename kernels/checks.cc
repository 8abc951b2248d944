// Argument checks shared by the kernels (messages per STYLE.md: op, argument, value, rule).
#include <algorithm>
#include <climits>
#include <string>

#include "kernels.h"

namespace mc {

void check_size(const char* op, const char* name, int64_t value) {
  if (value < 0) fail(op, name, " = ", value, "; expected a size >= 0");
}

void check_geom(const char* op, const Geom& g) {
  const char* names[] = {"C", "H", "W", "kh", "kw", "ph", "pw", "sh", "sw", "dh", "dw"};
  const int64_t values[] = {g.C, g.H, g.W, g.kh, g.kw, g.ph, g.pw, g.sh, g.sw, g.dh, g.dw};
  const int64_t lows[] = {1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1};
  for (int f = 0; f < 11; ++f)
    if (values[f] < lows[f])
      fail(op, "geom.", names[f], " = ", values[f], "; expected >= ", lows[f]);
  if (g.oh() < 1 || g.ow() < 1)
    fail(op, "output would be ", g.oh(), "x", g.ow(), ": the dilated kernel does not fit the ",
         "padded input ", g.H + 2 * g.ph, "x", g.W + 2 * g.pw);
}

void check_index_list(const char* op, const char* name, const int64_t* idx, int64_t n,
                      int64_t bound) {
  for (int64_t t = 0; t < n; ++t) {
    if (idx[t] < 0 || idx[t] >= bound)
      fail(op, name, "[", t, "] = ", idx[t], "; expected indices in [0, ", bound, ")");
    if (t > 0 && idx[t] <= idx[t - 1])
      fail(op, name, " is not strictly increasing at position ", t, " (", idx[t - 1], " then ",
           idx[t], ")");
  }
}

void check_kept_rows(const char* op, const char* name, const int64_t* rows, int64_t m_kept,
                     int64_t m_pad, int64_t M) {
  if (m_kept > m_pad || m_pad > M)
    fail(op, "m_kept = ", m_kept, ", m_pad = ", m_pad, ", M = ", M,
         "; expected m_kept <= m_pad <= M");
  check_index_list(op, name, rows, m_kept, M);
}

void check_csr(const char* op, int64_t M, int64_t K, const int64_t* indptr,
               const int64_t* indices, int64_t nnz) {
  if (indptr[0] != 0) fail(op, "indptr[0] = ", indptr[0], "; expected 0");
  if (indptr[M] != nnz)
    fail(op, "indptr[-1] = ", indptr[M], " but indices has ", nnz, " entries");
  for (int64_t m = 0; m < M; ++m) {
    if (indptr[m + 1] < indptr[m])
      fail(op, "indptr decreases at row ", m, " (", indptr[m], " then ", indptr[m + 1], ")");
    if (indptr[m + 1] > nnz)
      fail(op, "indptr[", m + 1, "] = ", indptr[m + 1], " exceeds nnz = ", nnz);
  }
  for (int64_t m = 0; m < M; ++m)
    for (int64_t t = indptr[m]; t < indptr[m + 1]; ++t) {
      if (indices[t] < 0 || indices[t] >= K)
        fail(op, "indices[", t, "] = ", indices[t], " (row ", m,
             "); expected column indices in [0, ", K, ")");
      if (t > indptr[m] && indices[t] <= indices[t - 1])
        fail(op, "indices of row ", m, " are not sorted: ", indices[t - 1], " then ", indices[t],
             " (sort them, e.g. scipy's sort_indices())");
    }
}

void check_pool_geom(const char* op, const PoolGeom& g) {
  const char* names[] = {"H", "W", "kh", "kw", "ph", "pw", "sh", "sw", "oh", "ow"};
  const int64_t values[] = {g.H, g.W, g.kh, g.kw, g.ph, g.pw, g.sh, g.sw, g.oh, g.ow};
  const int64_t lows[] = {1, 1, 1, 1, 0, 0, 1, 1, 1, 1};
  for (int f = 0; f < 10; ++f)
    if (values[f] < lows[f])
      fail(op, "geom.", names[f], " = ", values[f], "; expected >= ", lows[f]);
  if (g.ph >= g.kh || g.pw >= g.kw)
    fail(op, "pad (", g.ph, ", ", g.pw, ") must be smaller than the kernel (", g.kh, ", ", g.kw,
         ")");
  if (g.H * g.W > INT32_MAX) fail(op, "plane ", g.H, "x", g.W, " has more than 2^31-1 pixels");
  // Each thread's phase planes hold sh*sw planes of (Hh + 1) x Wh (pooling.cc, Layout); a
  // stride far past the padded input made that std::vector too large inside a parallel region,
  // which aborted the process. The limit (ops/pooling.py checks the same) only refuses
  // geometries whose later windows start far past the image.
  const __int128 Hh = g.oh + (g.kh - 1) / g.sh, Wh = g.ow + (g.kw - 1) / g.sw;
  const __int128 scratch = __int128(g.sh) * g.sw * (Hh * Wh + Wh);
  const __int128 limit =
      std::max<__int128>(__int128(1) << 24,
                         __int128(16) * (g.H + 2 * g.ph + g.kh) * (g.W + 2 * g.pw + g.kw));
  if (scratch > limit)
    fail(op, "stride (", g.sh, ", ", g.sw, ") with output (", g.oh, ", ", g.ow, ") needs ",
         scratch > INT64_MAX ? std::string("more than 2^63") : std::to_string(int64_t(scratch)),
         " elements of phase scratch per thread, more than ", int64_t(limit),
         " (16 times the padded input and kernel): windows would start far past the image");
}

int64_t first_bad_index(const int32_t* mask, int64_t n, int64_t bound) {
  bool bad = false;
#pragma omp parallel for schedule(static) reduction(|| : bad) if (n > (1 << 16))
  for (int64_t t = 0; t < n; ++t) bad = bad || mask[t] < -1 || mask[t] >= bound;
  if (!bad) return -1;
  for (int64_t t = 0; t < n; ++t)
    if (mask[t] < -1 || mask[t] >= bound) return t;
  return -1;
}

}  // namespace mc
