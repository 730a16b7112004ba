// Micro-benchmarks of the CPU kernels (Google Benchmark), one thread, data in cache: GEMM as
// in a prompt's matmul (a tile of weight rows against 64 tokens of one row length), and the
// attention kernels.
//
//   build/bench_kernels [--benchmark_filter=Panel]
//
// items/s = weight-block x token dot products per second (one "output block" each).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/quants.h"
#include "core/dtype.h"
#include "core/error.h"

namespace {

using namespace tessera;
using namespace tessera::cpu;

constexpr int kTokens = 64;
constexpr int kRows = 64;

struct Data {
  int64_t n;
  DType t, xt;
  size_t wb, xb;
  std::vector<uint8_t> w, x, panels;
  uint8_t* panel0 = nullptr;
  Data(DType type, int64_t cols) : n(cols), t(type), xt(vec_dot_type(type)) {
    wb = row_size(t, n);
    xb = row_size(xt, n);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> f(n);
    w.resize(kRows * wb);
    for (int r = 0; r < kRows; ++r) {
      for (auto& v : f) v = nd(rng);
      try {
        quant::quantize_row(t, f.data(), w.data() + r * wb, n);
      } catch (const Error&) {
        // No quantizer for this type (the K-quants are read, never written): random codes
        // and scales; the speed of a dot does not depend on the values.
        for (size_t i = 0; i < wb; ++i) w[r * wb + i] = static_cast<uint8_t>(rng() & 0x3b);
      }
    }
    x.resize(kTokens * xb);
    for (int c = 0; c < kTokens; ++c) {
      for (auto& v : f) v = nd(rng);
      quantize_row(xt, f.data(), x.data() + c * xb, n);
    }
    if (panel_gemm_fn(t) == nullptr) return;  // no panels for this type
    const size_t pb = panel_bytes(xt, n);
    panels.resize(pb * (kTokens / kPanel) + 64);
    panel0 = panels.data() + (-reinterpret_cast<uintptr_t>(panels.data()) & 63);
    for (int p = 0; p < kTokens / kPanel; ++p) {
      pack_panel(xt, n, x.data() + p * kPanel * xb, xb, kPanel, panel0 + p * pb);
    }
  }
};

// n values of N(0, sd), the same for a given seed.
std::vector<float> normals(int64_t n, uint32_t seed, float sd = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// The same as fp16 bit patterns (K/V cache rows).
std::vector<uint16_t> normals_f16(int64_t n, uint32_t seed) {
  std::vector<uint16_t> h(n);
  const std::vector<float> f = normals(n, seed);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(f[i]);
  return h;
}

// A rows x n matrix of type t (a 32-element block type with its fp16 scale first) with random
// codes and sane scales, far larger than the caches: the decode streams below.
std::vector<uint8_t> stream_matrix(DType t, int64_t n, int64_t rows) {
  const size_t wb = row_size(t, n), bb = wb / (n / 32);
  std::vector<uint8_t> w(rows * wb);
  std::mt19937 rng(5);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint8_t>(rng());
  const uint16_t h = 0x2000;
  for (size_t b = 0; b < w.size(); b += bb) std::memcpy(w.data() + b, &h, 2);
  return w;
}

void set_items(benchmark::State& st, int64_t n) {
  st.SetItemsProcessed(st.iterations() * kRows * kTokens * (n / 32));
}

// The 4 x 4 tiles (cpu_matmul.cpp's path for small batches).
void BM_GemmTile(benchmark::State& st, DType t) {
  const Data d(t, st.range(0));
  const GemmTileFn tile = gemm_tile_fn(t);
  if (tile == nullptr) return st.SkipWithError("no tile kernel");
  std::vector<float> y(kTokens * kRows);
  for (auto _ : st) {
    for (int r0 = 0; r0 < kRows; r0 += kGemmTile)
      for (int c0 = 0; c0 < kTokens; c0 += kGemmTile)
        tile(d.n, d.w.data() + r0 * d.wb, d.wb, kGemmTile, d.x.data() + c0 * d.xb, d.xb, kGemmTile,
             y.data() + c0 * kRows + r0, kRows);
    benchmark::DoNotOptimize(y.data());
  }
  set_items(st, d.n);
}

// One token against 4-row tiles (the decode path), data in cache: compute cost only.
void BM_GemvTile(benchmark::State& st, DType t) {
  const Data d(t, st.range(0));
  const GemmTileFn tile = gemm_tile_fn(t);
  if (tile == nullptr) return st.SkipWithError("no tile kernel");
  std::vector<float> y(kRows);
  for (auto _ : st) {
    for (int r0 = 0; r0 < kRows; r0 += kGemmTile)
      tile(d.n, d.w.data() + r0 * d.wb, d.wb, kGemmTile, d.x.data(), d.xb, 1, y.data() + r0, 1);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetItemsProcessed(st.iterations() * kRows * (d.n / 32));
}

// Decode from memory: one token against a matrix four times the L3 (Q4_0 2048 x 131072 =
// 144 MiB, as the 1B-shape's output matrix) through the 4-row tiles.
void BM_GemvStream(benchmark::State& st, DType t) {
  const int64_t n = 2048, rows = 131072;
  const GemmTileFn tile = gemm_tile_fn(t);
  if (tile == nullptr) return st.SkipWithError("no tile kernel");
  const size_t wb = row_size(t, n);
  std::vector<uint8_t> w = stream_matrix(t, n, rows);
  std::vector<float> xf(n, 0.5f);
  std::vector<uint8_t> x(row_size(vec_dot_type(t), n));
  quantize_row(vec_dot_type(t), xf.data(), x.data(), n);
  std::vector<float> y(rows);
  for (auto _ : st) {
    for (int64_t r0 = 0; r0 < rows; r0 += kGemmTile)
      tile(n, w.data() + r0 * wb, wb, kGemmTile, x.data(), x.size(), 1, y.data() + r0, 1);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(w.size()));
}

// The panel GEMM (cpu_matmul.cpp's path for batches): 8-row tiles against all the panels,
// packing not included.
// With repacked = true, over the row-interleaved (R8) layout of the same weights.
void BM_PanelGemm(benchmark::State& st, DType t, bool repacked = false) {
  Data d(t, st.range(0));
  if (repacked) {
    if (!can_repack(t)) return st.SkipWithError("no R8 kernels");
    repack_rows(t, d.w.data(), kRows, d.n);
  }
  const PanelGemmFn gemm = panel_gemm_fn(repacked ? repacked_type(t) : t);
  if (gemm == nullptr) return st.SkipWithError("no panel kernel");
  const size_t pb = panel_bytes(d.xt, d.n);
  std::vector<float> y(kTokens * kRows);
  for (auto _ : st) {
    for (int r0 = 0; r0 < kRows; r0 += kPanelRows)
      gemm(d.n, d.w.data() + r0 * d.wb, d.wb, kPanelRows, d.panel0, pb, kTokens, y.data() + r0,
           kRows);
    benchmark::DoNotOptimize(y.data());
  }
  set_items(st, d.n);
}

// The row-interleaved (R8) GEMV, cpu_matmul.cpp's decode path for repacked weights: nc
// tokens (the second argument) against the kRows rows in cache, activation preparation
// included: compute cost only. Compare with BM_GemvTile (1 token).
void BM_GemvR8(benchmark::State& st, DType t) {
  Data d(t, st.range(0));
  const int nc = static_cast<int>(st.range(1));
  if (!can_repack(t)) return st.SkipWithError("no R8 kernels");
  const DType rt = repacked_type(t);
  repack_rows(t, d.w.data(), kRows, d.n);
  const GemvR8PrepareFn prep = gemv_r8_prepare_fn(rt);
  const GemvR8Fn gemv = gemv_r8_fn(rt);
  const size_t ab = gemv_r8_act_bytes(rt, d.n);
  std::vector<uint8_t> xp_buf(ab * nc + 64);
  uint8_t* xp = xp_buf.data() + (-reinterpret_cast<uintptr_t>(xp_buf.data()) & 63);
  std::vector<float> y(nc * kRows);
  for (auto _ : st) {
    for (int c = 0; c < nc; ++c) prep(d.n, d.x.data() + c * d.xb, xp + c * ab);
    gemv(d.n, d.w.data(), kRows / kRepackRows, xp, ab, nc, y.data(), kRows);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetItemsProcessed(st.iterations() * kRows * nc * (d.n / 32));
}

// Decode from memory through the R8 GEMV: BM_GemvStream's matrix, repacked.
void BM_GemvStreamR8(benchmark::State& st, DType t) {
  const int64_t n = 2048, rows = 131072;
  if (!can_repack(t)) return st.SkipWithError("no R8 kernels");
  const DType rt = repacked_type(t);
  std::vector<uint8_t> w = stream_matrix(t, n, rows);
  repack_rows(t, w.data(), rows, n);
  std::vector<float> xf(n, 0.5f);
  std::vector<uint8_t> x(row_size(DType::Q8_0, n));
  quantize_row(DType::Q8_0, xf.data(), x.data(), n);
  const size_t ab = gemv_r8_act_bytes(rt, n);
  std::vector<uint8_t> xp_buf(ab + 64);
  uint8_t* xp = xp_buf.data() + (-reinterpret_cast<uintptr_t>(xp_buf.data()) & 63);
  gemv_r8_prepare_fn(rt)(n, x.data(), xp);
  const GemvR8Fn gemv = gemv_r8_fn(rt);
  std::vector<float> y(rows);
  for (auto _ : st) {
    gemv(n, w.data(), rows / kRepackRows, xp, ab, 1, y.data(), rows);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(w.size()));
}

// Packing kTokens quantized rows into panels.
void BM_PackPanel(benchmark::State& st, DType t) {
  Data d(t, st.range(0));
  const size_t pb = panel_bytes(d.xt, d.n);
  for (auto _ : st) {
    for (int p = 0; p < kTokens / kPanel; ++p)
      pack_panel(d.xt, d.n, d.x.data() + p * kPanel * d.xb, d.xb, kPanel, d.panel0 + p * pb);
    benchmark::DoNotOptimize(d.panel0);
  }
  st.SetItemsProcessed(st.iterations() * kTokens * (d.n / 32));
}

// Flash attention over fp16 K/V (the KV cache's layout): one KV head's query group (3 heads
// of 64, as SmolLM2) against 256 keys in blocks of 16, per SIMD level. items = key x head.
void BM_FlashAttn(benchmark::State& st, const char* level) {
  const FlashAttnFn fa = flash_attn_fn_for(level);
  if (fa == nullptr) {
    st.SkipWithError("level not available on this CPU");
    return;
  }
  constexpr int kDim = 64, kGroup = 3, kCtx = 256, kBlock = 16;
  const int64_t stride = 3 * kDim;
  const std::vector<uint16_t> q = normals_f16(kGroup * kDim, 9), k = normals_f16(kCtx * stride, 10),
                              v = normals_f16(kCtx * stride, 11);
  std::vector<uint16_t> acc(kGroup * kDim);
  float m[kGroup], s[kGroup];
  for (auto _ : st) {
    std::fill(m, m + kGroup, -INFINITY);
    std::fill(s, s + kGroup, 0.f);
    std::fill(acc.begin(), acc.end(), uint16_t{0});
    for (int j = 0; j < kCtx; j += kBlock)
      fa(q.data(), kGroup, kDim, k.data() + j * stride, v.data() + j * stride, stride, kBlock,
         0.125f, m, s, acc.data());
    benchmark::DoNotOptimize(acc.data());
  }
  st.SetItemsProcessed(st.iterations() * kCtx * kGroup);
}

// The tiled kernel (long prompts): 16 query rows at positions 240..255 of one sequence, the
// same group of 3 heads of 64. items = key x head x row.
void BM_FlashAttnTiled(benchmark::State& st, const char* level) {
  const FlashAttnTiledFn fa = flash_attn_tiled_fn_for(level);
  if (fa == nullptr) {
    st.SkipWithError("level not available on this CPU");
    return;
  }
  constexpr int kDim = 64, kGroup = 3, kCtx = 256, kBlock = 16, kRows = 16;
  const int64_t stride = 3 * kDim;
  const std::vector<float> q = normals(kRows * kGroup * kDim, 9);
  const std::vector<uint16_t> k = normals_f16(kCtx * stride, 10),
                              v = normals_f16(kCtx * stride, 11);
  std::vector<float> out(q.size());
  std::vector<int32_t> table(kCtx / kBlock), pos(kRows);
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i);
  for (int r = 0; r < kRows; ++r) pos[r] = kCtx - kRows + r;
  TiledAttnArgs a;
  a.q = q.data();
  a.q_stride = kGroup * kDim;
  a.n_rows = kRows;
  a.pos = pos.data();
  a.nq = kGroup;
  a.head_dim = kDim;
  a.k = k.data();
  a.v = v.data();
  a.kv_stride = stride;
  a.block_table = table.data();
  a.block_size = kBlock;
  a.scale = 0.125f;
  a.out = out.data();
  a.out_stride = kGroup * kDim;
  for (auto _ : st) {
    fa(a);
    benchmark::DoNotOptimize(out.data());
  }
  st.SetItemsProcessed(st.iterations() * kCtx * kGroup * kRows);
}

// The single-row dot of every weight type against its quantized activation row (the
// reference path of every kernel above, and the only one for the types without tiles),
// 64 rows of 2048 in cache. items = 32-element blocks.
void BM_VecDot(benchmark::State& st, DType t) {
  const Data d(t, 2048);
  const VecDotFn dot = vec_dot_fn(t);
  float acc = 0.f;
  for (auto _ : st) {
    for (int r = 0; r < kRows; ++r) acc += dot(d.n, d.w.data() + r * d.wb, d.x.data());
    benchmark::DoNotOptimize(acc);
  }
  st.SetItemsProcessed(st.iterations() * kRows * (d.n / 32));
}

// Activation quantization (every matmul's first step): one 2048-float row into t.
// items = floats.
void BM_QuantizeRow(benchmark::State& st, DType t) {
  const int64_t n = 2048;
  const std::vector<float> x = normals(n, 4);
  std::vector<uint8_t> q(row_size(t, n));
  for (auto _ : st) {
    quantize_row(t, x.data(), q.data(), n);
    benchmark::DoNotOptimize(q.data());
  }
  st.SetItemsProcessed(st.iterations() * n);
}

// SwiGLU (silu(gate) * up, llama.cpp's exp polynomial) over 8192 elements, the 1B shape's
// FFN width. items = elements.
void BM_SiluMul(benchmark::State& st, const char* level) {
  const SiluMulFn f = silu_mul_fn_for(level);
  if (f == nullptr) return st.SkipWithError("level not available on this CPU");
  const int64_t n = 8192;
  const std::vector<float> gate = normals(n, 6, 2.f), up(n, 0.5f);
  std::vector<float> g(n);
  for (auto _ : st) {
    g = gate;
    f(g.data(), up.data(), n);
    benchmark::DoNotOptimize(g.data());
  }
  st.SetItemsProcessed(st.iterations() * n);
}

// libm-exact exp (the attention softmax's): 4096 arguments <= 0. items = elements.
void BM_ExpBatch(benchmark::State& st, const char* level) {
  const ExpBatchFn f = exp_batch_fn_for(level);
  if (f == nullptr) return st.SkipWithError("level not available on this CPU");
  const int64_t n = 4096;
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) x[i] = -0.01f * static_cast<float>(i);
  for (auto _ : st) {
    f(x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetItemsProcessed(st.iterations() * n);
}

BENCHMARK_CAPTURE(BM_GemmTile, q4_0, DType::Q4_0)->Arg(576)->Arg(2048);
BENCHMARK_CAPTURE(BM_PanelGemm, q4_0, DType::Q4_0)->Arg(576)->Arg(2048);
BENCHMARK_CAPTURE(BM_GemmTile, q4_1, DType::Q4_1)->Arg(576)->Arg(2048);
BENCHMARK_CAPTURE(BM_PanelGemm, q4_1, DType::Q4_1)->Arg(576)->Arg(2048);
BENCHMARK_CAPTURE(BM_GemmTile, q8_0, DType::Q8_0)->Arg(576)->Arg(2048);
BENCHMARK_CAPTURE(BM_PanelGemm, q8_0, DType::Q8_0)->Arg(576)->Arg(2048);
BENCHMARK_CAPTURE(BM_GemmTile, q5_0, DType::Q5_0)->Arg(2048);
BENCHMARK_CAPTURE(BM_GemmTile, q4_K, DType::Q4_K)->Arg(2048);
BENCHMARK_CAPTURE(BM_GemmTile, q6_K, DType::Q6_K)->Arg(2048);
BENCHMARK_CAPTURE(BM_GemmTile, f32, DType::F32)->Arg(384)->Arg(1536);
BENCHMARK_CAPTURE(BM_GemmTile, f16, DType::F16)->Arg(384)->Arg(1536);
BENCHMARK_CAPTURE(BM_GemvTile, q4_0, DType::Q4_0)->Arg(2048);
BENCHMARK_CAPTURE(BM_GemvStream, q4_0, DType::Q4_0)->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvStream, q4_1, DType::Q4_1)->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvTile, q4_1, DType::Q4_1)->Arg(2048);
BENCHMARK_CAPTURE(BM_GemvTile, q8_0, DType::Q8_0)->Arg(2048);
BENCHMARK_CAPTURE(BM_PackPanel, q8_0, DType::Q4_0)->Arg(2048);
BENCHMARK_CAPTURE(BM_FlashAttn, scalar, "scalar");
BENCHMARK_CAPTURE(BM_FlashAttn, avx2, "avx2");
BENCHMARK_CAPTURE(BM_FlashAttn, avx512, "avx512");
BENCHMARK_CAPTURE(BM_FlashAttnTiled, scalar, "scalar");
BENCHMARK_CAPTURE(BM_FlashAttnTiled, avx2, "avx2");
BENCHMARK_CAPTURE(BM_FlashAttnTiled, avx512, "avx512");
BENCHMARK_CAPTURE(BM_GemvR8, q4_0, DType::Q4_0)->Args({2048, 1})->Args({2048, 4})->Args({2048, 7});
BENCHMARK_CAPTURE(BM_GemvR8, q8_0, DType::Q8_0)->Args({2048, 1})->Args({2048, 4})->Args({2048, 7});
BENCHMARK_CAPTURE(BM_GemvStreamR8, q4_0, DType::Q4_0)->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvStreamR8, q8_0, DType::Q8_0)->UseRealTime();
BENCHMARK_CAPTURE(BM_GemvStream, q8_0, DType::Q8_0)->UseRealTime();
BENCHMARK_CAPTURE(BM_PanelGemm, q4_0_r8, DType::Q4_0, true)->Arg(576)->Arg(2048);
BENCHMARK_CAPTURE(BM_PanelGemm, q8_0_r8, DType::Q8_0, true)->Arg(576)->Arg(2048);

BENCHMARK_CAPTURE(BM_VecDot, f16, DType::F16);
BENCHMARK_CAPTURE(BM_VecDot, q4_0, DType::Q4_0);
BENCHMARK_CAPTURE(BM_VecDot, q4_1, DType::Q4_1);
BENCHMARK_CAPTURE(BM_VecDot, q5_0, DType::Q5_0);
BENCHMARK_CAPTURE(BM_VecDot, q8_0, DType::Q8_0);
BENCHMARK_CAPTURE(BM_VecDot, q2_k, DType::Q2_K);
BENCHMARK_CAPTURE(BM_VecDot, q3_k, DType::Q3_K);
BENCHMARK_CAPTURE(BM_VecDot, q4_k, DType::Q4_K);
BENCHMARK_CAPTURE(BM_VecDot, q5_k, DType::Q5_K);
BENCHMARK_CAPTURE(BM_VecDot, q6_k, DType::Q6_K);
BENCHMARK_CAPTURE(BM_QuantizeRow, q8_0, DType::Q8_0);
BENCHMARK_CAPTURE(BM_QuantizeRow, q8_1, DType::Q8_1);
BENCHMARK_CAPTURE(BM_QuantizeRow, q8_k, DType::Q8_K);
BENCHMARK_CAPTURE(BM_SiluMul, scalar, "scalar");
BENCHMARK_CAPTURE(BM_SiluMul, avx512, "avx512");
BENCHMARK_CAPTURE(BM_ExpBatch, scalar, "scalar");
BENCHMARK_CAPTURE(BM_ExpBatch, avx512, "avx512");

}  // namespace

BENCHMARK_MAIN();
