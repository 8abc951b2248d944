// Elementwise pieces of an inference forward: ReLU, softmax over the channel axis and the bias
// of a fully connected output. The layers' NumPy code computes the same values; these exist so
// that a bound forward (kernels/program.cc) runs a whole net without returning to Python.
#include <algorithm>
#include <cmath>
#include <vector>

#include "isa.h"

MC_ISA_BEGIN

template <typename T>
void relu_forward(const T* x, int64_t n, T slope, T* y) {
  check_size(sizeof(T) == 4 ? "f32_relu_forward" : "f64_relu_forward", "n", n);
  // x may be y: each value is read once, then written once at the same place.
  for_each_share(n, n > (1 << 18), [=](int64_t lo, int64_t hi) {
    if (slope == T(0)) {
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];  // NaN stays NaN
    } else {
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) y[i] = x[i] > T(0) ? x[i] : x[i] * slope;
    }
  });
}

template <typename T>
void softmax_forward(const T* x, int64_t outer, int64_t channels, int64_t inner, T* y) {
  const char* op = sizeof(T) == 4 ? "f32_softmax_forward" : "f64_softmax_forward";
  check_size(op, "outer", outer);
  check_size(op, "channels", channels);
  check_size(op, "inner", inner);
  if (channels == 0 || inner == 0) return;
  // Per inner position: the maximum, then the sum (one scratch row, reused); loops run along
  // the inner axis, which is contiguous.
  thread_local std::vector<T> acc;
  acc.resize(inner);
  T* s = acc.data();
  for (int64_t o = 0; o < outer; ++o) {
    const T* xo = x + o * channels * inner;
    T* yo = y + o * channels * inner;
    std::copy(xo, xo + inner, s);
    for (int64_t c = 1; c < channels; ++c)
      for (int64_t i = 0; i < inner; ++i) s[i] = std::max(s[i], xo[c * inner + i]);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < inner; ++i) yo[c * inner + i] = std::exp(xo[c * inner + i] - s[i]);
    std::fill(s, s + inner, T(0));
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < inner; ++i) s[i] += yo[c * inner + i];
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < inner; ++i) yo[c * inner + i] /= s[i];
  }
}

template <typename T>
void add_bias_rows(T* y, int64_t rows, int64_t cols, const T* bias) {
  const char* op = sizeof(T) == 4 ? "f32_add_bias_rows" : "f64_add_bias_rows";
  check_size(op, "rows", rows);
  check_size(op, "cols", cols);
  for (int64_t r = 0; r < rows; ++r) {
    T* yr = y + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) yr[c] += bias[c];
  }
}

template void relu_forward<float>(const float*, int64_t, float, float*);
template void relu_forward<double>(const double*, int64_t, double, double*);
template void softmax_forward<float>(const float*, int64_t, int64_t, int64_t, float*);
template void softmax_forward<double>(const double*, int64_t, int64_t, int64_t, double*);
template void add_bias_rows<float>(float*, int64_t, int64_t, const float*);
template void add_bias_rows<double>(double*, int64_t, int64_t, const double*);

MC_ISA_END
