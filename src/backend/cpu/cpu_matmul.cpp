// y[n, rows] = x[n, cols] · wᵀ for any weight type.
//
// The activations are converted once per call to the weight's vec dot type (e.g. Q8_0
// blocks for Q4_0 weights), then each thread takes a contiguous range of weight rows and
// dots every row with all n activation rows, so a weight row is read from memory once
// per call and stays in L1 while it meets the n tokens.
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/quants.h"

namespace tessera::cpu {

void CpuBackend::matmul(const Tensor& w, const float* x, float* y, int n, const Tensor* bias) {
  const int64_t cols = w.cols();
  const int64_t rows = w.rows();
  const DType vt = vec_dot_type(w.type);
  const size_t x_row_bytes = row_size(vt, cols);

  const uint8_t* xq;
  if (vt == DType::F32) {
    xq = reinterpret_cast<const uint8_t*>(x);
  } else {
    if (xq_.size() < x_row_bytes * n) xq_.resize(x_row_bytes * n);
    uint8_t* dst = xq_.data();
    pool_.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) quantize_row(vt, x + t * cols, dst + t * x_row_bytes, cols);
    }, grain(cols));
    xq = dst;
  }

  const VecDotFn dot = vec_dot_fn(w.type);
  const float* bias_data = bias ? static_cast<const float*>(bias->data) : nullptr;
  pool_.parallel_for(rows, [&](int64_t rb, int64_t re, int) {
    for (int64_t r = rb; r < re; ++r) {
      const uint8_t* wr = w.row(r);
      const float bv = bias_data ? bias_data[r] : 0.0f;
      for (int t = 0; t < n; ++t) y[t * rows + r] = dot(cols, wr, xq + t * x_row_bytes) + bv;
    }
  }, grain(cols * n));
}

}  // namespace tessera::cpu
