// y[n, rows] = x[n, cols] · wᵀ for any weight type.
//
// The activations are converted once per call to the weight's vec dot type (e.g. Q8_0
// blocks for Q4_0 weights), then each thread takes a contiguous range of weight rows and
// dots every row with all n activation rows, so a weight row is read from memory once
// per call and stays in L1 while it meets the n tokens.
#include <algorithm>
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

  const float* bias_data = bias ? static_cast<const float*>(bias->data) : nullptr;
  const GemmTileFn tile = gemm_tile_fn(w.type);
  if (tile != nullptr) {
    // Tiles of kGemmTile rows x kGemmTile tokens; threads split the rows in whole tiles.
    // A tile's results equal vec_dot's, so the split does not change a single bit.
    const size_t w_row_bytes = row_size(w.type, cols);
    const int64_t n_groups = (rows + kGemmTile - 1) / kGemmTile;
    pool_.parallel_for(n_groups, [&](int64_t gb, int64_t ge, int) {
      for (int64_t g = gb; g < ge; ++g) {
        const int64_t r0 = g * kGemmTile;
        const int nr = static_cast<int>(std::min<int64_t>(kGemmTile, rows - r0));
        for (int t0 = 0; t0 < n; t0 += kGemmTile) {
          const int nc = std::min(kGemmTile, n - t0);
          tile(cols, w.row(r0), w_row_bytes, nr, xq + t0 * x_row_bytes, x_row_bytes, nc,
               y + int64_t{t0} * rows + r0, rows);
        }
        if (bias_data) {
          for (int t = 0; t < n; ++t)
            for (int64_t r = r0; r < r0 + nr; ++r) y[t * rows + r] += bias_data[r];
        }
      }
    }, grain(cols * n * kGemmTile));
    return;
  }

  const VecDotFn dot = vec_dot_fn(w.type);
  pool_.parallel_for(rows, [&](int64_t rb, int64_t re, int) {
    for (int64_t r = rb; r < re; ++r) {
      const uint8_t* wr = w.row(r);
      const float bv = bias_data ? bias_data[r] : 0.0f;
      for (int t = 0; t < n; ++t) y[t * rows + r] = dot(cols, wr, xq + t * x_row_bytes) + bv;
    }
  }, grain(cols * n));
}

}  // namespace tessera::cpu
