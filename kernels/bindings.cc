// Python bindings of minicaffe._kernels: argument conversion and checks only, then the GIL is
// released and the kernel runs. Only minicaffe/ops/native.py imports this module.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "blas.h"
#include "kernels.h"

namespace py = pybind11;
using mc::fail;

namespace {

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// "(2, 3)", "(5,)": Python's tuple spelling, as the NumPy twins print shapes.
std::string tuple_str(const std::vector<int64_t>& dims) {
  std::string s = "(";
  for (size_t d = 0; d < dims.size(); ++d) s += (d ? ", " : "") + std::to_string(dims[d]);
  return s + (dims.size() == 1 ? ",)" : ")");
}

std::string shape_str(const py::array& a) {
  return tuple_str(std::vector<int64_t>(a.shape(), a.shape() + a.ndim()));
}

// 4 for float32, 8 for float64; TypeError otherwise.
int float_size(const char* op, const char* name, const py::array& a) {
  if (a.dtype().kind() == 'f' && (a.itemsize() == 4 || a.itemsize() == 8)) return int(a.itemsize());
  throw py::type_error(std::string(op) + ": " + name + " has dtype " + dtype_name(a) +
                       "; expected float32 or float64");
}

// Same dtype as the first operand, C-contiguous, the given shape; writeable for outputs.
void check_array(const char* op, const char* name, const py::array& a, int itemsize,
                 const std::vector<int64_t>& shape, bool output = false) {
  if (a.dtype().kind() != 'f' || a.itemsize() != itemsize)
    throw py::type_error(std::string(op) + ": " + name + " has dtype " + dtype_name(a) +
                         "; expected " + (itemsize == 4 ? "float32" : "float64"));
  if (!(a.flags() & py::array::c_style)) fail(op, name, " must be C-contiguous");
  if (output && !a.writeable()) fail(op, name, " is read-only");
  bool same = a.ndim() == py::ssize_t(shape.size());
  for (size_t d = 0; same && d < shape.size(); ++d) same = a.shape(d) == shape[d];
  if (!same) fail(op, name, " has shape ", shape_str(a), "; expected ", tuple_str(shape));
}

// A 1-D C-contiguous int64 index array; returns its length.
int64_t index_array(const char* op, const char* name, const py::array& a) {
  if (a.dtype().kind() != 'i' || a.itemsize() != 8)
    throw py::type_error(std::string(op) + ": " + name + " has dtype " + dtype_name(a) +
                         "; expected int64");
  if (a.ndim() != 1) fail(op, name, " has shape ", shape_str(a), "; expected a 1-D array");
  if (!(a.flags() & py::array::c_style)) fail(op, name, " must be C-contiguous");
  return a.shape(0);
}

const int64_t* idx_ptr(const py::array& a) { return static_cast<const int64_t*>(a.data()); }

mc::Geom geom_of(const char* op, const std::vector<int64_t>& v) {
  if (v.size() != 11)
    fail(op, "geom has ", v.size(),
         " fields; expected 11 (C, H, W, kh, kw, ph, pw, sh, sw, dh, dw)");
  mc::Geom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]};
  mc::check_geom(op, g);
  return g;
}

// x: a float32/float64 batch (N, C, H, W) of images of geometry g; returns the float size.
int image_batch(const char* op, const py::array& x, const mc::Geom& g) {
  const int sz = float_size(op, "x", x);
  if (x.ndim() != 4) fail(op, "x has shape ", shape_str(x), "; expected (N, C, H, W)");
  check_array(op, "x", x, sz, {x.shape(0), g.C, g.H, g.W});
  return sz;
}

// The active instruction set's kernels for dtype T (kernels.h); read per call, so set_isa
// takes effect at the next call.
template <typename T>
const mc::TypedKernels<T>& kern() {
  return mc::active().typed<T>();
}

template <typename T>
const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }

// A checked kernel call on fixed arrays, made without touching Python objects: an entry point
// below either runs it at once (without the GIL) or, through Program, keeps it to run many
// times (Program also keeps the arrays alive). Every check happens when the call is made; the
// kernel table is read when it runs, so set_isa applies to kept calls too.
using Call = std::function<void()>;

void run_released(const Call& call) {
  py::gil_scoped_release release;
  call();
}

// ---- lowering -------------------------------------------------------------------------

template <typename T>
void im2col_rows_t(const py::array& x, const mc::Geom& g, const int64_t* rows, int64_t n_rows,
                   py::array& out) {
  const T* px = cptr<T>(x);
  T* po = mptr<T>(out);
  const int64_t N = x.shape(0);
  py::gil_scoped_release release;
  kern<T>().im2col_rows(px, N, g, rows, n_rows, po, true);
}

void lower_rows(const char* op, const py::array& x, const std::vector<int64_t>& geom,
                py::object rows_obj, py::array out) {
  const mc::Geom g = geom_of(op, geom);
  const int sz = image_batch(op, x, g);
  const int64_t N = x.shape(0);
  const int64_t* rows = nullptr;
  int64_t n_rows = g.rows();
  py::array rows_arr;
  if (!rows_obj.is_none()) {
    rows_arr = rows_obj.cast<py::array>();
    n_rows = index_array(op, "rows", rows_arr);
    rows = idx_ptr(rows_arr);
    mc::check_index_list(op, "rows", rows, n_rows, g.rows());
  }
  check_array(op, "out", out, sz, {n_rows, N * g.cols()}, true);
  if (sz == 4) im2col_rows_t<float>(x, g, rows, n_rows, out);
  else im2col_rows_t<double>(x, g, rows, n_rows, out);
}

void im2col_rows(const py::array& x, const std::vector<int64_t>& geom, py::object rows,
                 py::array out) {
  lower_rows("im2col_rows", x, geom, rows, out);
}

void im2col_batch(const py::array& x, const std::vector<int64_t>& geom, py::array out) {
  lower_rows("im2col_batch", x, geom, py::none(), out);
}

template <typename T>
void col2im_t(const py::array& cols, int64_t N, const mc::Geom& g, py::array& out) {
  const T* pc = cptr<T>(cols);
  T* po = mptr<T>(out);
  py::gil_scoped_release release;
  kern<T>().col2im(pc, N, g, po, true);
}

void col2im_batch(const py::array& cols, const std::vector<int64_t>& geom, int64_t N,
                  py::array out) {
  const char* op = "col2im_batch";
  const mc::Geom g = geom_of(op, geom);
  if (N < 1) fail(op, "N = ", N, "; expected >= 1");
  const int sz = float_size(op, "cols", cols);
  check_array(op, "cols", cols, sz, {g.rows(), N * g.cols()});
  check_array(op, "out", out, sz, {N, g.C, g.H, g.W}, true);
  if (sz == 4) col2im_t<float>(cols, N, g, out);
  else col2im_t<double>(cols, N, g, out);
}

// ---- GEMM -----------------------------------------------------------------------------

template <typename T>
Call gemm_t(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const py::array& a,
            const py::array& b, double beta, py::array& out) {
  const T *pa = cptr<T>(a), *pb = cptr<T>(b);
  T* pc = mptr<T>(out);
  return [=] { kern<T>().gemm(ta, tb, M, N, K, T(alpha), pa, pb, T(beta), pc); };
}

Call bind_gemm(const py::array& a, const py::array& b, py::array out, double alpha, double beta,
               bool trans_a, bool trans_b) {
  const char* op = "gemm";
  const int sz = float_size(op, "a", a);
  if (a.ndim() != 2) fail(op, "a has shape ", shape_str(a), "; expected 2 dimensions");
  if (b.ndim() != 2) fail(op, "b has shape ", shape_str(b), "; expected 2 dimensions");
  const int64_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
  const int64_t N = trans_b ? b.shape(0) : b.shape(1);
  check_array(op, "a", a, sz, {a.shape(0), a.shape(1)});
  check_array(op, "b", b, sz, trans_b ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N});
  check_array(op, "out", out, sz, {M, N}, true);
  if (sz == 4) return gemm_t<float>(trans_a, trans_b, M, N, K, alpha, a, b, beta, out);
  return gemm_t<double>(trans_a, trans_b, M, N, K, alpha, a, b, beta, out);
}

void gemm(const py::array& a, const py::array& b, py::array out, double alpha, double beta,
          bool trans_a, bool trans_b) {
  run_released(bind_gemm(a, b, out, alpha, beta, trans_a, trans_b));
}

// Shapes of out = a b for the float32 products below: a (M, K), b (K, N), out (M, N),
// C-contiguous, sizes within 32 bits.
void check_sgemm(const char* op, const py::array& a, const py::array& b, const py::array& out) {
  if (float_size(op, "a", a) != 4) fail(op, "a has dtype float64; expected float32");
  if (a.ndim() != 2) fail(op, "a has shape ", shape_str(a), "; expected 2 dimensions");
  if (b.ndim() != 2) fail(op, "b has shape ", shape_str(b), "; expected 2 dimensions");
  const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
  for (int64_t v : {M, N, K})
    if (v > INT_MAX) fail(op, "a size of ", v, " exceeds 32 bits");
  check_array(op, "a", a, 4, {M, K});
  check_array(op, "b", b, 4, {K, N});
  check_array(op, "out", out, 4, {M, N}, true);
}

// The convolution forward's own kernel alone, for its tests: out = a b when it applies
// (returns True), untouched otherwise (returns False: the forward would use the BLAS).
bool tile_sgemm(const py::array& a, const py::array& b, py::array out) {
  check_sgemm("tile_sgemm", a, b, out);
  const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
  const float *pa = cptr<float>(a), *pb = cptr<float>(b);
  float* pc = mptr<float>(out);
  py::gil_scoped_release release;
  return mc::active().tile_sgemm(int(M), int(N), int(K), pa, int(K), pb, int(N), 0.f, pc, int(N),
                                 nullptr);
}

// out = a b the way the convolution forwards multiply (the benchmark compares it with the
// BLAS on the same shapes).
void forward_sgemm(const py::array& a, const py::array& b, py::array out) {
  check_sgemm("forward_sgemm", a, b, out);
  const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
  const float *pa = cptr<float>(a), *pb = cptr<float>(b);
  float* pc = mptr<float>(out);
  py::gil_scoped_release release;
  if (M == 0 || N == 0) return;
  if (K == 0) {
    std::fill(pc, pc + M * N, 0.f);
    return;
  }
  mc::active().forward_sgemm(int(M), int(N), int(K), pa, pb, pc);
}

template <typename T>
void gemm_compact_t(int64_t M, int64_t N, int64_t K, const py::array& packed, const int64_t* rows,
                    int64_t m_kept, const int64_t* cols, int64_t k_kept, const py::array& b,
                    py::array& out) {
  const T *pa = cptr<T>(packed), *pb = cptr<T>(b);
  T* pc = mptr<T>(out);
  const int64_t m_pad = packed.shape(0);
  py::gil_scoped_release release;
  kern<T>().gemm_compact(M, N, K, pa, m_pad, rows, m_kept, cols, k_kept, pb, pc);
}

void gemm_compact(const py::array& packed, const py::array& rows, py::object cols_obj,
                  const py::array& b, py::array out) {
  const char* op = "gemm_compact";
  const int sz = float_size(op, "packed", packed);
  if (packed.ndim() != 2)
    fail(op, "packed has shape ", shape_str(packed), "; expected (m_kept, k_kept)");
  if (b.ndim() != 2) fail(op, "b has shape ", shape_str(b), "; expected 2 dimensions");
  if (out.ndim() != 2) fail(op, "out has shape ", shape_str(out), "; expected (M, N)");
  // packed may carry zero rows below the kept ones (padding, see kernels.h).
  const int64_t m_pad = packed.shape(0), k_kept = packed.shape(1);
  const int64_t M = out.shape(0), N = b.shape(1);
  const int64_t m_kept = index_array(op, "rows", rows);
  if (m_kept > m_pad)
    fail(op, "rows has ", m_kept, " entries but packed has only ", m_pad, " rows");
  const int64_t* cols = nullptr;
  py::array cols_arr;
  int64_t K = k_kept;
  if (!cols_obj.is_none()) {
    cols_arr = cols_obj.cast<py::array>();
    if (index_array(op, "cols", cols_arr) != k_kept)
      fail(op, "cols has ", cols_arr.shape(0), " entries but packed has ", k_kept, " columns");
    cols = idx_ptr(cols_arr);
    K = b.shape(0);
  }
  check_array(op, "packed", packed, sz, {m_pad, k_kept});
  check_array(op, "b", b, sz, {K, N});
  check_array(op, "out", out, sz, {M, N}, true);
  if (sz == 4) gemm_compact_t<float>(M, N, K, packed, idx_ptr(rows), m_kept, cols, k_kept, b, out);
  else gemm_compact_t<double>(M, N, K, packed, idx_ptr(rows), m_kept, cols, k_kept, b, out);
}

template <typename T>
void conv_forward_t(const py::array& x, const mc::Geom& g, const py::array& a, int64_t m_kept,
                    const int64_t* rows, const int64_t* cols, py::array& out, int64_t block_bytes) {
  const T *px = cptr<T>(x), *pa = cptr<T>(a);
  T* po = mptr<T>(out);
  const int64_t N = x.shape(0), m_pad = a.shape(0), k = a.shape(1), M = out.shape(0);
  py::gil_scoped_release release;
  kern<T>().conv_forward(px, N, g, pa, m_pad, k, rows, m_kept, M, cols, po, block_bytes);
}

void conv_forward(const py::array& x, const std::vector<int64_t>& geom, const py::array& a,
                  py::object rows_obj, py::object cols_obj, py::array out, int64_t block_bytes) {
  const char* op = "conv_forward";
  const mc::Geom g = geom_of(op, geom);
  const int sz = image_batch(op, x, g);
  const int64_t N = x.shape(0);
  if (a.ndim() != 2) fail(op, "a has shape ", shape_str(a), "; expected 2 dimensions");
  if (out.ndim() != 2) fail(op, "out has shape ", shape_str(out), "; expected (M, N*oh*ow)");
  check_array(op, "a", a, sz, {a.shape(0), a.shape(1)});
  check_array(op, "out", out, sz, {out.shape(0), N * g.cols()}, true);
  if (block_bytes < 1) fail(op, "block_bytes = ", block_bytes, "; expected >= 1");
  py::array rows_arr, cols_arr;
  const int64_t *rows = nullptr, *cols = nullptr;
  int64_t m_kept = a.shape(0);
  if (!rows_obj.is_none()) {
    rows_arr = rows_obj.cast<py::array>();
    m_kept = index_array(op, "rows", rows_arr);
    rows = idx_ptr(rows_arr);
  }
  if (!cols_obj.is_none()) {
    cols_arr = cols_obj.cast<py::array>();
    if (index_array(op, "cols", cols_arr) != a.shape(1))
      fail(op, "cols has ", cols_arr.shape(0), " entries but a has ", a.shape(1), " columns");
    cols = idx_ptr(cols_arr);
  }
  if (sz == 4) conv_forward_t<float>(x, g, a, m_kept, rows, cols, out, block_bytes);
  else conv_forward_t<double>(x, g, a, m_kept, rows, cols, out, block_bytes);
}

// ---- dense convolution for training (kernels/conv.cc) ------------------------------------

// The shapes both directions share: x (N, C, H, W), w (M, C/group*kh*kw), a group dividing C
// and M, an optional (M,) vector. Returns the float size.
int check_conv_args(const char* op, const py::array& x, const mc::Geom& g, const py::array& w,
                    int64_t group, const py::object& vec_obj, const char* vec_name) {
  const int sz = image_batch(op, x, g);
  if (group < 1 || g.C % group)
    fail(op, "group = ", group, "; expected a divisor of the ", g.C, " channels");
  if (w.ndim() != 2) fail(op, "w has shape ", shape_str(w), "; expected (M, C/group*kh*kw)");
  const int64_t M = w.shape(0);
  if (M % group) fail(op, "group = ", group, " does not divide the ", M, " rows of w");
  check_array(op, "w", w, sz, {M, g.rows() / group});
  if (!vec_obj.is_none()) check_array(op, vec_name, vec_obj.cast<py::array>(), sz, {M});
  return sz;
}

template <typename T>
T* opt_ptr(const py::object& o) {
  return o.is_none() ? nullptr : static_cast<T*>(o.cast<py::array>().mutable_data());
}

template <typename T>
Call conv_forward_nchw_t(const py::array& x, const mc::Geom& g, int64_t group, const py::array& w,
                         const py::object& bias, py::array& y, int64_t block_bytes,
                         const mc::Kept& kept) {
  const T *px = cptr<T>(x), *pw = cptr<T>(w), *pb = opt_ptr<T>(bias);
  T* py_ = mptr<T>(y);
  const int64_t N = x.shape(0), M = y.shape(1);
  return [=] { kern<T>().conv_forward_nchw(px, N, g, group, pw, M, pb, py_, block_bytes, kept); };
}

// bias, rows and cols: arrays or None (the caller keeps them alive while the call is kept).
Call bind_conv_forward_nchw(const py::array& x, const std::vector<int64_t>& geom, int64_t group,
                            const py::array& w, py::object bias, py::array y,
                            int64_t block_bytes, py::object rows_obj, py::object cols_obj) {
  const char* op = "conv_forward_nchw";
  const mc::Geom g = geom_of(op, geom);
  if (block_bytes < 1) fail(op, "block_bytes = ", block_bytes, "; expected >= 1");
  if (rows_obj.is_none() != cols_obj.is_none())
    fail(op, "rows and cols come together (compacted weights) or not at all");
  if (rows_obj.is_none()) {
    const int sz = check_conv_args(op, x, g, w, group, bias, "bias");
    check_array(op, "y", y, sz, {x.shape(0), w.shape(0), g.cols()}, true);
    if (sz == 4) return conv_forward_nchw_t<float>(x, g, group, w, bias, y, block_bytes, mc::Kept());
    return conv_forward_nchw_t<double>(x, g, group, w, bias, y, block_bytes, mc::Kept());
  }
  // Compacted weights: w is the packed (m_pad, k) block, y gives M.
  const int sz = image_batch(op, x, g);
  if (w.ndim() != 2) fail(op, "w has shape ", shape_str(w), "; expected (m_pad, k_kept)");
  check_array(op, "w", w, sz, {w.shape(0), w.shape(1)});
  if (y.ndim() != 3) fail(op, "y has shape ", shape_str(y), "; expected (N, M, oh*ow)");
  check_array(op, "y", y, sz, {x.shape(0), y.shape(1), g.cols()}, true);
  if (!bias.is_none()) check_array(op, "bias", bias.cast<py::array>(), sz, {y.shape(1)});
  const py::array rows = rows_obj.cast<py::array>(), cols = cols_obj.cast<py::array>();
  mc::Kept kept;
  kept.m_kept = index_array(op, "rows", rows);
  kept.rows = idx_ptr(rows);
  kept.m_pad = w.shape(0);
  kept.k = index_array(op, "cols", cols);
  kept.cols = idx_ptr(cols);
  if (kept.k != w.shape(1))
    fail(op, "cols has ", kept.k, " entries but w has ", w.shape(1), " columns");
  if (sz == 4) return conv_forward_nchw_t<float>(x, g, group, w, bias, y, block_bytes, kept);
  return conv_forward_nchw_t<double>(x, g, group, w, bias, y, block_bytes, kept);
}

void conv_forward_nchw(const py::array& x, const std::vector<int64_t>& geom, int64_t group,
                       const py::array& w, py::object bias, py::array y, int64_t block_bytes,
                       py::object rows, py::object cols) {
  run_released(bind_conv_forward_nchw(x, geom, group, w, bias, y, block_bytes, rows, cols));
}

template <typename T>
void conv_backward_t(const py::array& x, const mc::Geom& g, int64_t group, const py::array& w,
                     const py::array& dy, py::array& dw, const py::object& db,
                     const py::object& dx, int64_t block_bytes) {
  const T *px = cptr<T>(x), *pw = cptr<T>(w), *pdy = cptr<T>(dy);
  T *pdw = mptr<T>(dw), *pdb = opt_ptr<T>(db), *pdx = opt_ptr<T>(dx);
  const int64_t N = x.shape(0), M = w.shape(0);
  py::gil_scoped_release release;
  kern<T>().conv_backward(px, pdy, N, g, group, pw, M, pdw, pdb, pdx, block_bytes);
}

void conv_backward(const py::array& x, const std::vector<int64_t>& geom, int64_t group,
                   const py::array& w, const py::array& dy, py::array dw, py::object db,
                   py::object dx, int64_t block_bytes) {
  const char* op = "conv_backward";
  const mc::Geom g = geom_of(op, geom);
  const int sz = check_conv_args(op, x, g, w, group, db, "db");
  const int64_t N = x.shape(0), M = w.shape(0);
  check_array(op, "dy", dy, sz, {N, M, g.cols()});
  check_array(op, "dw", dw, sz, {M, g.rows() / group}, true);
  if (!db.is_none()) check_array(op, "db", db.cast<py::array>(), sz, {M}, true);
  if (!dx.is_none()) check_array(op, "dx", dx.cast<py::array>(), sz, {N, g.C, g.H, g.W}, true);
  if (block_bytes < 1) fail(op, "block_bytes = ", block_bytes, "; expected >= 1");
  if (sz == 4) conv_backward_t<float>(x, g, group, w, dy, dw, db, dx, block_bytes);
  else conv_backward_t<double>(x, g, group, w, dy, dw, db, dx, block_bytes);
}

template <typename T>
void linear_compact_t(int64_t Nb, int64_t M, int64_t K, const py::array& x,
                      const py::array& packed, const int64_t* rows, int64_t m_kept,
                      const int64_t* cols, int64_t k_kept, py::array& out) {
  const T *px = cptr<T>(x), *pa = cptr<T>(packed);
  T* po = mptr<T>(out);
  py::gil_scoped_release release;
  kern<T>().linear_compact(Nb, M, K, px, pa, rows, m_kept, cols, k_kept, po);
}

void linear_compact(const py::array& x, const py::array& packed, const py::array& rows,
                    const py::array& cols, py::array out) {
  const char* op = "linear_compact";
  const int sz = float_size(op, "x", x);
  if (x.ndim() != 2) fail(op, "x has shape ", shape_str(x), "; expected (N, K)");
  if (packed.ndim() != 2)
    fail(op, "packed has shape ", shape_str(packed), "; expected (m_kept, k_kept)");
  if (out.ndim() != 2) fail(op, "out has shape ", shape_str(out), "; expected (N, M)");
  const int64_t Nb = x.shape(0), K = x.shape(1), M = out.shape(1);
  const int64_t m_kept = packed.shape(0), k_kept = packed.shape(1);
  if (index_array(op, "rows", rows) != m_kept)
    fail(op, "rows has ", rows.shape(0), " entries but packed has ", m_kept, " rows");
  if (index_array(op, "cols", cols) != k_kept)
    fail(op, "cols has ", cols.shape(0), " entries but packed has ", k_kept, " columns");
  check_array(op, "x", x, sz, {Nb, K});
  check_array(op, "packed", packed, sz, {m_kept, k_kept});
  check_array(op, "out", out, sz, {Nb, M}, true);
  if (sz == 4)
    linear_compact_t<float>(Nb, M, K, x, packed, idx_ptr(rows), m_kept, idx_ptr(cols), k_kept, out);
  else
    linear_compact_t<double>(Nb, M, K, x, packed, idx_ptr(rows), m_kept, idx_ptr(cols), k_kept,
                             out);
}

// ---- pooling --------------------------------------------------------------------------

mc::PoolGeom pool_geom_of(const char* op, const std::vector<int64_t>& v) {
  if (v.size() != 10)
    fail(op, "geom has ", v.size(), " fields; expected 10 (H, W, kh, kw, ph, pw, sh, sw, oh, ow)");
  mc::PoolGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]};
  mc::check_pool_geom(op, g);
  return g;
}

// A C-contiguous int32 array of the given shape (the argmax mask).
void check_mask(const char* op, const py::array& a, const std::vector<int64_t>& shape,
                bool output) {
  if (a.dtype().kind() != 'i' || a.itemsize() != 4)
    throw py::type_error(std::string(op) + ": mask has dtype " + dtype_name(a) +
                         "; expected int32");
  if (!(a.flags() & py::array::c_style)) fail(op, "mask must be C-contiguous");
  if (output && !a.writeable()) fail(op, "mask is read-only");
  bool same = a.ndim() == py::ssize_t(shape.size());
  for (size_t d = 0; same && d < shape.size(); ++d) same = a.shape(d) == shape[d];
  if (!same) fail(op, "mask has shape ", shape_str(a), "; expected ", tuple_str(shape));
}

// mask None: the values only (an inference forward), no argmax written.
template <typename T>
Call max_pool_forward_t(const py::array& x, const mc::PoolGeom& g, py::array& y,
                        const py::object& mask) {
  const T* px = cptr<T>(x);
  T* py_ = mptr<T>(y);
  int32_t* pm = mask.is_none() ? nullptr
                               : static_cast<int32_t*>(py::cast<py::array>(mask).mutable_data());
  const int64_t planes = x.shape(0) * x.shape(1);
  return [=] { kern<T>().max_pool_forward(px, planes, g, py_, pm); };
}

Call bind_max_pool_forward(const py::array& x, const std::vector<int64_t>& geom, py::array y,
                           py::object mask) {
  const char* op = "max_pool_forward";
  const mc::PoolGeom g = pool_geom_of(op, geom);
  const int sz = float_size(op, "x", x);
  if (x.ndim() != 4) fail(op, "x has shape ", shape_str(x), "; expected (N, C, H, W)");
  const int64_t N = x.shape(0), C = x.shape(1);
  check_array(op, "x", x, sz, {N, C, g.H, g.W});
  check_array(op, "out", y, sz, {N, C, g.oh, g.ow}, true);
  if (!mask.is_none()) {
    if (!py::isinstance<py::array>(mask))
      throw py::type_error(std::string(op) + ": mask must be a numpy.ndarray or None");
    check_mask(op, py::cast<py::array>(mask), {N, C, g.oh, g.ow}, true);
  }
  if (sz == 4) return max_pool_forward_t<float>(x, g, y, mask);
  return max_pool_forward_t<double>(x, g, y, mask);
}

void max_pool_forward(const py::array& x, const std::vector<int64_t>& geom, py::array y,
                      py::object mask) {
  run_released(bind_max_pool_forward(x, geom, y, mask));
}

template <typename T>
void max_pool_backward_t(const py::array& dy, const py::array& mask, const mc::PoolGeom& g,
                         py::array& dx) {
  const T* pd = cptr<T>(dy);
  const int32_t* pm = static_cast<const int32_t*>(mask.data());
  T* px = mptr<T>(dx);
  const int64_t planes = dy.shape(0) * dy.shape(1);
  py::gil_scoped_release release;
  kern<T>().max_pool_backward(pd, pm, planes, g, px);
}

void max_pool_backward(const py::array& dy, const py::array& mask,
                       const std::vector<int64_t>& geom, py::array dx) {
  const char* op = "max_pool_backward";
  const mc::PoolGeom g = pool_geom_of(op, geom);
  const int sz = float_size(op, "dy", dy);
  if (dy.ndim() != 4) fail(op, "dy has shape ", shape_str(dy), "; expected (N, C, oh, ow)");
  const int64_t N = dy.shape(0), C = dy.shape(1);
  check_array(op, "dy", dy, sz, {N, C, g.oh, g.ow});
  check_mask(op, mask, {N, C, g.oh, g.ow}, false);
  check_array(op, "dx", dx, sz, {N, C, g.H, g.W}, true);
  const int32_t* pm = static_cast<const int32_t*>(mask.data());
  const int64_t bad = mc::first_bad_index(pm, N * C * g.oh * g.ow, g.H * g.W);
  if (bad >= 0)
    fail(op, "mask entry ", bad, " = ", pm[bad], "; expected -1 or an index in [0, ", g.H * g.W,
         ")");
  if (sz == 4) max_pool_backward_t<float>(dy, mask, g, dx);
  else max_pool_backward_t<double>(dy, mask, g, dx);
}

template <typename T>
Call ave_pool_t(bool forward, const py::array& src, const mc::PoolGeom& g, py::array& dst) {
  const T* ps = cptr<T>(src);
  T* pd = mptr<T>(dst);
  const int64_t planes = src.shape(0) * src.shape(1);
  if (forward) return [=] { kern<T>().ave_pool_forward(ps, planes, g, pd); };
  return [=] { kern<T>().ave_pool_backward(ps, planes, g, pd); };
}

// One body for both directions: forward reads x (N, C, H, W) and writes out (N, C, oh, ow);
// backward reads dy (N, C, oh, ow) and writes dx (N, C, H, W).
Call bind_ave_pool(bool forward, const py::array& src, const std::vector<int64_t>& geom,
                   py::array dst) {
  const char* op = forward ? "ave_pool_forward" : "ave_pool_backward";
  const char* src_name = forward ? "x" : "dy";
  const mc::PoolGeom g = pool_geom_of(op, geom);
  const int sz = float_size(op, src_name, src);
  if (src.ndim() != 4)
    fail(op, src_name, " has shape ", shape_str(src), "; expected ",
         forward ? "(N, C, H, W)" : "(N, C, oh, ow)");
  const int64_t N = src.shape(0), C = src.shape(1);
  const std::vector<int64_t> in{N, C, g.H, g.W}, out{N, C, g.oh, g.ow};
  check_array(op, src_name, src, sz, forward ? in : out);
  check_array(op, forward ? "out" : "dx", dst, sz, forward ? out : in, true);
  if (sz == 4) return ave_pool_t<float>(forward, src, g, dst);
  return ave_pool_t<double>(forward, src, g, dst);
}

void ave_pool_forward(const py::array& x, const std::vector<int64_t>& geom, py::array y) {
  run_released(bind_ave_pool(true, x, geom, y));
}

void ave_pool_backward(const py::array& dy, const std::vector<int64_t>& geom, py::array dx) {
  run_released(bind_ave_pool(false, dy, geom, dx));
}

// ---- CSR ------------------------------------------------------------------------------

enum class CsrOp { MM, MM_T, MKL };

template <typename T>
void csr_t(CsrOp which, int64_t M, int64_t N, int64_t K, const py::array& indptr,
           const py::array& indices, const py::array& data, int64_t nnz, const py::array& b,
           py::array& out) {
  const int64_t *pp = idx_ptr(indptr), *pi = idx_ptr(indices);
  const T *pd = cptr<T>(data), *pb = cptr<T>(b);
  T* po = mptr<T>(out);
  py::gil_scoped_release release;
  if (which == CsrOp::MM) kern<T>().csrmm(M, N, K, pp, pi, pd, nnz, pb, po);
  else if (which == CsrOp::MM_T) kern<T>().csrmm_t(N, M, K, pp, pi, pd, nnz, pb, po);
#if defined(MINICAFFE_BLAS_MKL)
  else mc::csrmm_mkl<T>(M, N, K, pp, pi, pd, nnz, pb, po);
#endif
}

// which == MM / MKL: b (K, N) -> out (M, N); MM_T: b is x (N, K) -> out (N, M).
void csr_call(const char* op, CsrOp which, const py::array& indptr, const py::array& indices,
              const py::array& data, int64_t K, const py::array& b, py::array out) {
  const int sz = float_size(op, "data", data);
  if (K < 0) fail(op, "K = ", K, "; expected a size >= 0");
  const int64_t M = index_array(op, "indptr", indptr) - 1;
  if (M < 0) fail(op, "indptr is empty; expected M + 1 >= 1 entries");
  const int64_t nnz = index_array(op, "indices", indices);
  if (data.ndim() != 1 || data.shape(0) != nnz)
    fail(op, "data has shape ", shape_str(data), " but indices has ", nnz, " entries");
  check_array(op, "data", data, sz, {nnz});
  if (b.ndim() != 2) fail(op, "b has shape ", shape_str(b), "; expected 2 dimensions");
  const bool t = which == CsrOp::MM_T;
  const int64_t N = t ? b.shape(0) : b.shape(1);
  using dims = std::vector<int64_t>;
  check_array(op, t ? "x" : "b", b, sz, t ? dims{N, K} : dims{K, N});
  check_array(op, "out", out, sz, t ? dims{N, M} : dims{M, N}, true);
  if (sz == 4) csr_t<float>(which, M, N, K, indptr, indices, data, nnz, b, out);
  else csr_t<double>(which, M, N, K, indptr, indices, data, nnz, b, out);
}

// ---- elementwise pieces of an inference forward (kernels/activations.cc) ---------------

// y has x's shape and dtype (y may be x); returns the float size.
int same_shape_output(const char* op, const py::array& x, const py::array& y) {
  const int sz = float_size(op, "x", x);
  check_array(op, "x", x, sz, std::vector<int64_t>(x.shape(), x.shape() + x.ndim()));
  check_array(op, "y", y, sz, std::vector<int64_t>(x.shape(), x.shape() + x.ndim()), true);
  return sz;
}

Call bind_relu_forward(const py::array& x, py::array y, double slope) {
  const int sz = same_shape_output("relu_forward", x, y);
  const int64_t n = x.size();
  if (sz == 4) {
    const float* px = cptr<float>(x);
    float* py_ = mptr<float>(y);
    return [=] { kern<float>().relu_forward(px, n, float(slope), py_); };
  }
  const double* px = cptr<double>(x);
  double* py_ = mptr<double>(y);
  return [=] { kern<double>().relu_forward(px, n, slope, py_); };
}

Call bind_softmax_forward(const py::array& x, py::array y, int64_t outer, int64_t channels,
                          int64_t inner) {
  const char* op = "softmax_forward";
  const int sz = same_shape_output(op, x, y);
  if (outer < 0 || channels < 0 || inner < 0 || outer * channels * inner != x.size())
    fail(op, "(outer, channels, inner) = (", outer, ", ", channels, ", ", inner,
         ") does not split the ", x.size(), " values of x ", shape_str(x));
  if (sz == 4) {
    const float* px = cptr<float>(x);
    float* py_ = mptr<float>(y);
    return [=] { kern<float>().softmax_forward(px, outer, channels, inner, py_); };
  }
  const double* px = cptr<double>(x);
  double* py_ = mptr<double>(y);
  return [=] { kern<double>().softmax_forward(px, outer, channels, inner, py_); };
}

// out (M, N) = x (M, K) op(w) (+ bias (N,) on every row); op(w) = w^T when trans_w.
Call bind_linear_forward(const py::array& x, const py::array& w, py::object bias, py::array out,
                         bool trans_w) {
  const char* op = "linear_forward";
  Call product = bind_gemm(x, w, out, 1.0, 0.0, false, trans_w);
  if (bias.is_none()) return product;
  const int sz = float_size(op, "x", x);
  const py::array b = bias.cast<py::array>();
  const int64_t M = out.shape(0), N = out.shape(1);
  check_array(op, "bias", b, sz, {N});
  if (sz == 4) {
    const float* pb = cptr<float>(b);
    float* po = mptr<float>(out);
    return [=] { product(); kern<float>().add_bias_rows(po, M, N, pb); };
  }
  const double* pb = cptr<double>(b);
  double* po = mptr<double>(out);
  return [=] { product(); kern<double>().add_bias_rows(po, M, N, pb); };
}

// ---- bound programs (kernels/program.cc) -------------------------------------------------

// The Python face of mc::Program: each method checks its arguments exactly as the entry point
// of the same name does, keeps the arrays alive and appends the call; run() executes a range
// of steps without the GIL.
class BoundProgram {
 public:
  int64_t conv_forward_nchw(const py::array& x, const std::vector<int64_t>& geom, int64_t group,
                            const py::array& w, py::object bias, py::array y,
                            int64_t block_bytes, py::object rows, py::object cols) {
    bias = array_or_none(bias);
    rows = array_or_none(rows);
    cols = array_or_none(cols);
    return add(bind_conv_forward_nchw(x, geom, group, w, bias, y, block_bytes, rows, cols),
               {x, w, bias, y, rows, cols});
  }
  int64_t max_pool_forward(const py::array& x, const std::vector<int64_t>& geom, py::array y,
                           py::object mask) {
    return add(bind_max_pool_forward(x, geom, y, mask), {x, y, mask});
  }
  int64_t ave_pool_forward(const py::array& x, const std::vector<int64_t>& geom, py::array y) {
    return add(bind_ave_pool(true, x, geom, y), {x, y});
  }
  int64_t linear_forward(const py::array& x, const py::array& w, py::object bias, py::array out,
                         bool trans_w) {
    bias = array_or_none(bias);
    return add(bind_linear_forward(x, w, bias, out, trans_w), {x, w, bias, out});
  }
  int64_t relu_forward(const py::array& x, py::array y, double slope) {
    return add(bind_relu_forward(x, y, slope), {x, y});
  }
  int64_t softmax_forward(const py::array& x, py::array y, int64_t outer, int64_t channels,
                          int64_t inner) {
    return add(bind_softmax_forward(x, y, outer, channels, inner), {x, y});
  }
  int64_t copy(const py::array& x, py::array y) {
    same_shape_output("copy", x, y);
    const void* px = x.data();
    void* py_ = y.mutable_data();
    const size_t n = size_t(x.nbytes());
    return add([=] { if (px != py_) std::memcpy(py_, px, n); }, {x, y});
  }
  // Stops the run (returns its own index from run()) when `current` no longer holds the bytes
  // of `snapshot`: weights changed since a format derived from them was bound.
  int64_t guard(const py::array& current, const py::array& snapshot) {
    const char* op = "guard";
    const int sz = float_size(op, "current", current);
    check_array(op, "current", current,
                sz, std::vector<int64_t>(current.shape(), current.shape() + current.ndim()));
    check_array(op, "snapshot", snapshot,
                sz, std::vector<int64_t>(current.shape(), current.shape() + current.ndim()));
    const void *a = current.data(), *b = snapshot.data();
    const int64_t n = current.nbytes();
    keep({current, snapshot});
    return program_.add([=] { return mc::same_bytes(a, b, n); });
  }
  int64_t run(int64_t first, int64_t last) {
    py::gil_scoped_release release;
    return program_.run(first, last);
  }
  int64_t failed_step() const { return program_.failed_step(); }
  int64_t size() const { return program_.size(); }

 private:
  // An optional array argument as the array the bound call will point into (a list would
  // otherwise be converted into a temporary that dies after binding).
  static py::object array_or_none(const py::object& o) {
    return o.is_none() ? o : py::object(o.cast<py::array>());
  }
  void keep(std::initializer_list<py::object> objects) {
    for (const py::object& o : objects)
      if (!o.is_none()) keep_.push_back(o);
  }
  int64_t add(Call call, std::initializer_list<py::object> objects) {
    keep(objects);
    return program_.add([call] {
      call();
      return true;
    });
  }
  mc::Program program_;
  std::vector<py::object> keep_;  // the arrays the bound calls point into
};

py::dict build_info() {
  py::dict d;
  d["blas_vendor"] = mc::blas_vendor();
  d["blas_version"] = mc::blas_version();
  d["threads"] = mc::get_num_threads();
  d["blas_threads"] = mc::get_blas_threads();
  const mc::Kernels& k = mc::active();
  d["isa"] = mc::isa_name(k.isa);
  d["isa_available"] = mc::isa_names(true);
  d["isa_compiled"] = mc::isa_names(false);
  d["vector_bits"] = k.vector_bits;
  d["openmp"] = mc::openmp_version();
  d["compiled"] = true;
  d["tile_gemm"] = mc::tile_gemm_enabled() && k.has_tile_gemm;
#if defined(MINICAFFE_BLAS_MKL)
  d["mkl_sparse"] = true;
#else
  d["mkl_sparse"] = false;
#endif
  return d;
}

}  // namespace

PYBIND11_MODULE(_kernels, m) {
  m.doc() = "minicaffe compiled kernels; use them through minicaffe.ops, not directly.";
  mc::init_blas();
  // Bad arguments surface as minicaffe.errors.KernelError (a ValueError), like the NumPy twins.
  static PyObject* kernel_error =
      py::object(py::module_::import("minicaffe.errors").attr("KernelError")).release().ptr();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(kernel_error, e.what());
    }
  });
  m.def("im2col_batch", &im2col_batch, py::arg("x"), py::arg("geom"), py::arg("out"),
        "x (N, C, H, W) -> out (C*kh*kw, N*oh*ow); "
        "geom = (C, H, W, kh, kw, ph, pw, sh, sw, dh, dw).");
  m.def("im2col_rows", &im2col_rows, py::arg("x"), py::arg("geom"), py::arg("rows"),
        py::arg("out"),
        "Only the lowered rows `rows` (int64, increasing) -> out (len(rows), N*oh*ow).");
  m.def("col2im_batch", &col2im_batch, py::arg("cols"), py::arg("geom"), py::arg("N"),
        py::arg("out"), "cols (C*kh*kw, N*oh*ow) -> out (N, C, H, W), overlaps summed.");
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("trans_a") = false, py::arg("trans_b") = false,
        "out = alpha op(a) op(b) + beta out (CBLAS).");
  m.def("tile_sgemm", &tile_sgemm, py::arg("a"), py::arg("b"), py::arg("out"),
        "out = a b (float32) by the active instruction set's own GEMM (the convolution forward's); "
        "False where it does not apply (no such kernel for the instruction set, B too wide, an "
        "empty product).");
  m.def("forward_sgemm", &forward_sgemm, py::arg("a"), py::arg("b"), py::arg("out"),
        "out = a b (float32) the way the convolution forwards multiply: split over the threads, "
        "each share by the active instruction set's own GEMM where it applies, else the BLAS.");
  m.def("gemm_compact", &gemm_compact, py::arg("packed"), py::arg("rows"), py::arg("cols"),
        py::arg("b"), py::arg("out"),
        "out (M, N) = A b with A's kept block `packed`; cols None: b is (k_kept, N), else (K, N).");
  m.def("conv_forward", &conv_forward, py::arg("x"), py::arg("geom"), py::arg("a"),
        py::arg("rows"), py::arg("cols"), py::arg("out"), py::arg("block_bytes") = 2 << 20,
        "out (M, N*oh*ow) = a (m_pad, k) x lowered rows `cols` of x, lowered by blocks of images; "
        "rows None: dense weights (m_pad = M); cols None: all C*kh*kw rows.");
  m.def("conv_forward_nchw", &conv_forward_nchw, py::arg("x"), py::arg("geom"),
        py::arg("group"), py::arg("w"), py::arg("bias"), py::arg("y"),
        py::arg("block_bytes") = 1 << 20, py::arg("rows") = py::none(),
        py::arg("cols") = py::none(),
        "y (N, M, oh*ow) = convolution of x (N, C, H, W) by w (M, C/group*kh*kw) "
        "(+ bias (M,) unless None), the batch split over threads by images; with rows/cols, "
        "w is a compacted (m_pad, k_kept) block of one group.");
  m.def("conv_backward", &conv_backward, py::arg("x"), py::arg("geom"), py::arg("group"),
        py::arg("w"), py::arg("dy"), py::arg("dw"), py::arg("db"), py::arg("dx"),
        py::arg("block_bytes") = 1 << 20,
        "dw += dL/dw, db += dL/db (unless None), dx = dL/dx (unless None) from dy (N, M, oh*ow).");
  m.def("linear_compact", &linear_compact, py::arg("x"), py::arg("packed"), py::arg("rows"),
        py::arg("cols"), py::arg("out"), "out (N, M) = x (N, K) A^T with A's kept block `packed`.");
  m.def("csrmm", [](const py::array& p, const py::array& i, const py::array& d, int64_t K,
                    const py::array& b, py::array out) {
          csr_call("csrmm", CsrOp::MM, p, i, d, K, b, out);
        }, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("K"), py::arg("b"),
        py::arg("out"), "CSR (M, K) x b (K, N) -> out (M, N) (OpenMP, ours).");
  m.def("csrmm_t", [](const py::array& p, const py::array& i, const py::array& d, int64_t K,
                      const py::array& x, py::array out) {
          csr_call("csrmm_t", CsrOp::MM_T, p, i, d, K, x, out);
        }, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("K"), py::arg("x"),
        py::arg("out"), "x (N, K) x CSR(M, K)^T -> out (N, M).");
#if defined(MINICAFFE_BLAS_MKL)
  m.def("csrmm_mkl", [](const py::array& p, const py::array& i, const py::array& d, int64_t K,
                        const py::array& b, py::array out) {
          csr_call("csrmm_mkl", CsrOp::MKL, p, i, d, K, b, out);
        }, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("K"), py::arg("b"),
        py::arg("out"), "The same product through MKL's mkl_sparse_?_mm.");
#endif
  m.def("max_pool_forward", &max_pool_forward, py::arg("x"), py::arg("geom"), py::arg("out"),
        py::arg("mask"),
        "x (N, C, H, W) -> out (N, C, oh, ow) and int32 mask (argmax h*W + w per window; "
        "None: the values only); geom = (H, W, kh, kw, ph, pw, sh, sw, oh, ow).");
  m.def("max_pool_backward", &max_pool_backward, py::arg("dy"), py::arg("mask"), py::arg("geom"),
        py::arg("dx"), "dx (N, C, H, W) = 0, then dy (N, C, oh, ow) added at the mask's pixels.");
  m.def("ave_pool_forward", &ave_pool_forward, py::arg("x"), py::arg("geom"), py::arg("out"),
        "x (N, C, H, W) -> out (N, C, oh, ow), Caffe's AVE (padding counts in the divisor).");
  m.def("ave_pool_backward", &ave_pool_backward, py::arg("dy"), py::arg("geom"), py::arg("dx"),
        "dx (N, C, H, W) = 0, then each dy / window size added over its clipped window.");
  m.def("relu_forward", [](const py::array& x, py::array y, double slope) {
          run_released(bind_relu_forward(x, y, slope));
        }, py::arg("x"), py::arg("y"), py::arg("negative_slope") = 0.0,
        "y = x > 0 ? x : negative_slope * x (y may be x).");
  m.def("softmax_forward", [](const py::array& x, py::array y, int64_t outer, int64_t channels,
                              int64_t inner) {
          run_released(bind_softmax_forward(x, y, outer, channels, inner));
        }, py::arg("x"), py::arg("y"), py::arg("outer"), py::arg("channels"), py::arg("inner"),
        "Softmax over the middle axis of x seen as (outer, channels, inner); y may be x.");
  m.def("linear_forward", [](const py::array& x, const py::array& w, py::object bias,
                             py::array out, bool trans_w) {
          run_released(bind_linear_forward(x, w, bias, out, trans_w));
        }, py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("out"), py::arg("trans_w"),
        "out (M, N) = x (M, K) op(w) + bias (N,) (unless None); op(w) = w^T when trans_w.");
  py::class_<BoundProgram>(m, "Program",
                           "Kernel calls bound to fixed arrays, checked once, run many times.")
      .def(py::init<>())
      .def("conv_forward_nchw", &BoundProgram::conv_forward_nchw, py::arg("x"), py::arg("geom"),
           py::arg("group"), py::arg("w"), py::arg("bias"), py::arg("y"),
           py::arg("block_bytes") = 1 << 20, py::arg("rows") = py::none(),
           py::arg("cols") = py::none())
      .def("max_pool_forward", &BoundProgram::max_pool_forward, py::arg("x"), py::arg("geom"),
           py::arg("out"), py::arg("mask"))
      .def("ave_pool_forward", &BoundProgram::ave_pool_forward, py::arg("x"), py::arg("geom"),
           py::arg("out"))
      .def("linear_forward", &BoundProgram::linear_forward, py::arg("x"), py::arg("w"),
           py::arg("bias"), py::arg("out"), py::arg("trans_w"))
      .def("relu_forward", &BoundProgram::relu_forward, py::arg("x"), py::arg("y"),
           py::arg("negative_slope") = 0.0)
      .def("softmax_forward", &BoundProgram::softmax_forward, py::arg("x"), py::arg("y"),
           py::arg("outer"), py::arg("channels"), py::arg("inner"))
      .def("copy", &BoundProgram::copy, py::arg("x"), py::arg("y"))
      .def("guard", &BoundProgram::guard, py::arg("current"), py::arg("snapshot"))
      .def("run", &BoundProgram::run, py::arg("first"), py::arg("last"),
           "Runs steps first..last; returns the index of a guard that stopped, or -1.")
      .def("failed_step", &BoundProgram::failed_step)
      .def("__len__", &BoundProgram::size);
  m.def("set_num_threads", &mc::set_num_threads, py::arg("n"), py::arg("openmp_threads") = -1);
  m.def("get_num_threads", &mc::get_num_threads);
  m.def("max_threads", [] { return mc::kMaxThreads; }, "The most threads set_num_threads accepts.");
  m.def("build_info", &build_info);
  m.def("set_isa", &mc::set_isa, py::arg("name"),
        "Make the kernels of instruction set `name` (baseline, avx2, avx512) the active ones; "
        "KernelError if it is unknown, not compiled in, or beyond this CPU.");
  m.def("get_isa", [] { return std::string(mc::isa_name(mc::active().isa)); },
        "The active instruction set.");
  m.def("isa_names", &mc::isa_names, py::arg("supported_only") = true,
        "Instruction sets compiled into this build, lowest first; with supported_only, only "
        "those this CPU can run.");
  m.def("peak_gflops", [](int vector_bits, double seconds) {
          if (vector_bits == 0) vector_bits = mc::active().vector_bits;
          py::gil_scoped_release release;
          return mc::peak_gflops(vector_bits, seconds);
        }, py::arg("vector_bits") = 0, py::arg("seconds") = 0.2,
        "FP32 FMA peak of one core (GFLOP/s) with vectors of vector_bits (128, 256, 512; 0: the "
        "active instruction set's), measured with a register-resident loop.");
}
