// A forward pass bound once and run many times (see kernels.h, class Program).
//
// Why: at batch 1 a LeNet layer's kernels take a few microseconds, and converting and checking
// the arguments of each call from Python cost as much again (minicaffe/plan.py builds these
// programs for TEST nets; docs/BENCHMARKS.md has the per-layer figures).
#include <cstring>

#include "kernels.h"

namespace mc {

int64_t Program::add(Step step) {
  steps_.push_back(std::move(step));
  return int64_t(steps_.size()) - 1;
}

int64_t Program::run(int64_t first, int64_t last) {
  const int64_t n = size();
  if (first < 0 || last >= n || (first > last + 1))
    fail("Program.run", "steps ", first, "..", last, " are not a range of the ", n, " steps");
  failed_ = -1;
  for (int64_t i = first; i <= last; ++i) {
    try {
      if (!steps_[i]()) return i;
    } catch (...) {
      failed_ = i;
      throw;
    }
  }
  return -1;
}

bool same_bytes(const void* a, const void* b, int64_t n) {
  return n <= 0 || std::memcmp(a, b, size_t(n)) == 0;
}

}  // namespace mc
