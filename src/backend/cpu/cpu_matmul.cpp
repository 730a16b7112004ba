// y[n, rows] = x[n, cols] · wᵀ for any weight type.
//
// The activations are converted once per call to the weight's vec dot type (e.g. Q8_0
// blocks for Q4_0 weights), then each thread takes a contiguous range of weight rows and
// dots every row with all n activation rows, so a weight row is read from memory once
// per call and stays in L1 while it meets the n tokens.
//
// Batches of kPanelMinTokens or more go through the panel GEMM where the weight type has
// one: the quantized activations are packed kPanel tokens to a panel, and each thread
// takes whole tiles of kPanelRows weight rows and runs them against every panel.
//
// Row-interleaved weights (Q4_0_R8, Q8_0_R8) take the panel GEMM the same way (a tile is
// one group) and, for fewer tokens, the R8 GEMV: each token's Q8_0 row is prepared once
// (codes, scale and offset-correcting start: what every group meets) and each thread
// streams a range of whole groups.
#include <algorithm>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/quants.h"
#include "core/error.h"

namespace tessera::cpu {

// Below this many tokens the 4 x 4 tiles win: a panel's 16 lanes would be mostly padding.
constexpr int kPanelMinTokens = 8;
// Bytes of packed activations a thread's weight tiles meet before moving on (L2 is 1 MiB
// per core on the CPUs this was tuned on).
constexpr int64_t kPanelChunkBytes = 384 << 10;

void CpuBackend::matmul(const Tensor& w, const float* x, float* y, int n, const Tensor* bias) {
  const int64_t cols = w.cols();
  const int64_t rows = w.rows();
  const DType vt = vec_dot_type(w.type);
  const size_t x_row_bytes = row_size(vt, cols);

  const bool r8_gemv = is_repacked(w.type) && n < kPanelMinTokens;
  const GemvR8PrepareFn r8_prepare = r8_gemv ? gemv_r8_prepare_fn(w.type) : nullptr;
  const size_t xr_bytes = r8_gemv ? gemv_r8_act_bytes(w.type, cols) : 0;
  uint8_t* xr = nullptr;
  if (r8_gemv) {
    if (r8_prepare == nullptr)
      throw Error("matmul: no kernel for repacked weights at this SIMD level");
    if (xr_.size() < xr_bytes * n + 64) xr_.resize(xr_bytes * n + 64);
    xr = xr_.data() + (-reinterpret_cast<uintptr_t>(xr_.data()) & 63);
  }

  const uint8_t* xq;
  if (vt == DType::F32) {
    xq = reinterpret_cast<const uint8_t*>(x);
  } else {
    if (xq_.size() < x_row_bytes * n) xq_.resize(x_row_bytes * n);
    uint8_t* dst = xq_.data();
    pool_.parallel_for(
        n,
        [&](int64_t b, int64_t e, int) {
          for (int64_t t = b; t < e; ++t) {
            quantize_row(vt, x + t * cols, dst + t * x_row_bytes, cols);
            if (r8_prepare) r8_prepare(cols, dst + t * x_row_bytes, xr + t * xr_bytes);
          }
        },
        grain(cols));
    xq = dst;
  }

  const float* bias_data = bias ? static_cast<const float*>(bias->data) : nullptr;
  auto add_bias = [&](int64_t r0, int64_t r1) {
    if (!bias_data) return;
    for (int t = 0; t < n; ++t)
      for (int64_t r = r0; r < r1; ++r) y[t * rows + r] += bias_data[r];
  };
  if (r8_gemv) {
    // Threads split the groups; a group's results equal vec_dot's on its plain rows.
    const GemvR8Fn gemv = gemv_r8_fn(w.type);
    const int64_t n_groups = rows / kRepackRows;
    pool_.parallel_for(
        n_groups,
        [&](int64_t gb, int64_t ge, int) {
          const int64_t r0 = gb * kRepackRows;
          gemv(cols, w.row(r0), ge - gb, xr, xr_bytes, n, y + r0, rows);
          add_bias(r0, ge * kRepackRows);
        },
        grain(cols * n * kRepackRows));
    return;
  }

  const PanelGemmFn panel = n >= kPanelMinTokens ? panel_gemm_fn(w.type) : nullptr;
  if (is_repacked(w.type) && panel == nullptr)
    throw Error("matmul: no kernel for repacked weights at this SIMD level");
  if (panel != nullptr) {
    const int64_t n_panels = (n + kPanel - 1) / kPanel;
    const size_t p_bytes = panel_bytes(vt, cols);
    if (panels_.size() < p_bytes * n_panels + 64) panels_.resize(p_bytes * n_panels + 64);
    uint8_t* pbase = panels_.data() + (-reinterpret_cast<uintptr_t>(panels_.data()) & 63);
    pool_.parallel_for(n_panels, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) {
        const int nc = static_cast<int>(std::min<int64_t>(kPanel, n - p * kPanel));
        pack_panel(vt, cols, xq + p * kPanel * x_row_bytes, x_row_bytes, nc, pbase + p * p_bytes);
      }
    });
    const size_t w_row_bytes = row_size(w.type, cols);
    const int64_t n_tiles = (rows + kPanelRows - 1) / kPanelRows;
    // Panels in chunks that stay in L2 while the thread's tiles meet them.
    const int64_t chunk = std::max<int64_t>(1, kPanelChunkBytes / p_bytes);
    pool_.parallel_for(
        n_tiles,
        [&](int64_t gb, int64_t ge, int) {
          for (int64_t p0 = 0; p0 < n_panels; p0 += chunk) {
            const int n_tok = static_cast<int>(std::min<int64_t>(chunk * kPanel, n - p0 * kPanel));
            for (int64_t g = gb; g < ge; ++g) {
              const int64_t r0 = g * kPanelRows;
              const int nr = static_cast<int>(std::min<int64_t>(kPanelRows, rows - r0));
              panel(cols, w.row(r0), w_row_bytes, nr, pbase + p0 * p_bytes, p_bytes, n_tok,
                    y + p0 * kPanel * rows + r0, rows);
            }
          }
          add_bias(gb * kPanelRows, std::min(rows, ge * kPanelRows));
        },
        grain(cols * n * kPanelRows));
    return;
  }

  // Float weights (F32, F16, BF16) with fewer tokens than a tile is wide go row by row:
  // a 4 x 1 or 4 x 2 float tile streams its weights at half the rate of single-row dots
  // (`tessera bench` on SmolLM2 F16, 2 threads: tg128 25.8-30.2 vs 53.1-58.7 t/s, pp2
  // 42-51 vs 88-98; pp4 equal, pp8 163 vs 91 for the tile). Same sums either way: a tile's
  // results equal vec_dot's bit for bit.
  const bool float_weights = w.type == DType::F32 || w.type == DType::F16 || w.type == DType::BF16;
  const GemmTileFn tile = float_weights && n < kGemmTile ? nullptr : gemm_tile_fn(w.type);
  if (tile != nullptr) {
    // Tiles of kGemmTile rows x kGemmTile tokens; threads split the rows in whole tiles.
    // A tile's results equal vec_dot's, so the split does not change a single bit. The
    // tokens go in chunks whose activations stay in L2 while the thread's tiles meet them
    // (a batch of float activations can be megabytes).
    const size_t w_row_bytes = row_size(w.type, cols);
    const int64_t n_groups = (rows + kGemmTile - 1) / kGemmTile;
    const int chunk = static_cast<int>(std::max<int64_t>(
        kGemmTile, kPanelChunkBytes / static_cast<int64_t>(x_row_bytes) / kGemmTile * kGemmTile));
    pool_.parallel_for(
        n_groups,
        [&](int64_t gb, int64_t ge, int) {
          for (int c0 = 0; c0 < n; c0 += chunk) {
            const int c1 = std::min(n, c0 + chunk);
            for (int64_t g = gb; g < ge; ++g) {
              const int64_t r0 = g * kGemmTile;
              const int nr = static_cast<int>(std::min<int64_t>(kGemmTile, rows - r0));
              for (int t0 = c0; t0 < c1; t0 += kGemmTile) {
                const int nc = std::min(kGemmTile, c1 - t0);
                tile(cols, w.row(r0), w_row_bytes, nr, xq + t0 * x_row_bytes, x_row_bytes, nc,
                     y + int64_t{t0} * rows + r0, rows);
              }
            }
          }
          add_bias(gb * kGemmTile, std::min(rows, ge * kGemmTile));
        },
        grain(cols * n * kGemmTile));
    return;
  }

  const VecDotFn dot = vec_dot_fn(w.type);
  pool_.parallel_for(
      rows,
      [&](int64_t rb, int64_t re, int) {
        for (int64_t r = rb; r < re; ++r) {
          const uint8_t* wr = w.row(r);
          const float bv = bias_data ? bias_data[r] : 0.0f;
          for (int t = 0; t < n; ++t) y[t * rows + r] = dot(cols, wr, xq + t * x_row_bytes) + bv;
        }
      },
      grain(cols * n));
}

}  // namespace tessera::cpu
