// Private to src/backend/cpu: the per-ISA kernel tables the dispatcher fills, the CPU-only
// block layouts (panels, R8 groups) and scalar helpers shared by every kernel file. The GGUF
// block structs are quant/blocks.h.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cpu/quants.h"
#include "quant/blocks.h"

namespace tessera::cpu {

using namespace quant;  // the block structs and their scale helpers (quant/blocks.h)

// One 32-element block of a panel (see pack_panel in quants.h): qs[g][c][k] is element
// 4g + k of token c's block; d and s are its fp16 fields widened (s: Q8_1's d * sum, zero
// for Q8_0); sum is the exact sum of its 32 codes. Padding tokens are all zeros.
struct alignas(64) PanelBlockQ8 {
  int8_t qs[8][kPanel][4];
  float d[kPanel];
  float s[kPanel];
  int32_t sum[kPanel];
};
static_assert(sizeof(PanelBlockQ8) == 512 + 3 * 64);

// The R8 group blocks (layout: "row-interleaved weights" in quants.h).
struct BlockQ4_0R8 {
  uint16_t d[8];
  uint8_t qs[128];
};
struct BlockQ8_0R8 {
  uint16_t d[8];
  uint8_t qs[256];
};
static_assert(sizeof(BlockQ4_0R8) == 8 * sizeof(BlockQ4_0) &&
              sizeof(BlockQ8_0R8) == 8 * sizeof(BlockQ8_0));

// One Q8_0 activation block prepared for the R8 GEMV (gemv_r8_prepare): x is the block's
// codes as they are (weight vector v meets the 8 bytes x[8v..8v+7] broadcast), d the fp16
// scale widened, and start the i32 accumulator start of lanes 2r, 2r + 1 that takes out the
// weights' offset. Q4_0 (weights q, meaning q - 8): start = -4 * (sum of the 32 codes) in
// every lane, so a row's two lanes start at -8 * sum. Q8_0 (weights w + 128): start[2v + h]
// = -128 * (sum of x[8v + 4h .. 8v + 4h + 3]), lane 2r + h of vector v. Small (40 / 72
// bytes a block), so a call's activations stay in L1 beside the weight stream.
struct ActR8Q4_0 {
  int8_t x[32];
  int32_t start;
  float d;
};
struct ActR8Q8_0 {
  int8_t x[32];
  int32_t start[8];
  float d;
  int32_t pad;
};
static_assert(sizeof(ActR8Q4_0) == 40 && sizeof(ActR8Q8_0) == 72);

// One ISA level's kernels, indexed by the DType value; null = not provided at that level
// (the dispatcher then uses the next lower level).
constexpr int kNumTypeSlots = 32;
struct KernelTable {
  VecDotFn vec_dot[kNumTypeSlots] = {};
  DequantizeRowFn dequantize[kNumTypeSlots] = {};
  QuantizeRowFn quantize[kNumTypeSlots] = {};
  GemmTileFn gemm_tile[kNumTypeSlots] = {};
  FlashAttnFn flash_attn = nullptr;
  ExpBatchFn exp = nullptr;
  FlashAttnTiledFn flash_attn_tiled = nullptr;
  SiluMulFn silu_mul = nullptr;
  GeluFn gelu = nullptr;
  PanelGemmFn panel_gemm[kNumTypeSlots] = {};
  // Row-interleaved weights, indexed by the plain type (Q4_0 for Q4_0_R8).
  GemvR8PrepareFn gemv_r8_prepare[kNumTypeSlots] = {};
  GemvR8Fn gemv_r8[kNumTypeSlots] = {};
  PanelGemmFn panel_gemm_r8[kNumTypeSlots] = {};
};

// Throws tessera::Error naming the function and the type.
[[noreturn]] void throw_unsupported(const char* what, DType t);

// Scalar references as table entries (quants_ref.cpp).
void fill_ref_kernels(KernelTable& t);
// SIMD kernels; only called after the CPU checks in quants.cpp passed.
void fill_avx2_kernels(KernelTable& t);
void fill_avx512_kernels(KernelTable& t);
void fill_avx2_attention_kernels(KernelTable& t);          // attention_avx2.cpp
void fill_avx2_tiled_attention_kernels(KernelTable& t);    // attention_tiled_avx2.cpp
void fill_avx512_attention_kernels(KernelTable& t);        // attention_avx512.cpp
void fill_avx512_tiled_attention_kernels(KernelTable& t);  // attention_tiled_avx512.cpp
void fill_avx2_activation_kernels(KernelTable& t);         // activations_avx2.cpp
void fill_avx512_panel_kernels(KernelTable& t);            // gemm_panel_avx512.cpp
void fill_avx512_gemv_r8_kernels(KernelTable& t);          // gemv_r8_avx512.cpp
void fill_avx512_float_gemm_kernels(KernelTable& t);       // gemm_float_avx512.cpp
void fill_ref_gelu_kernels(KernelTable& t);                // gelu_ref.cpp
void fill_avx2_gelu_kernels(KernelTable& t);               // gelu_avx2.cpp
void fill_avx2_gemm_tile_kernels(KernelTable& t);          // gemm_tile_avx2.cpp

// exp(x) as ggml_v_expf computes it in llama.cpp's AVX-512 build: x = n ln2 + b with
// n = round(x log2 e) (by the 1.5 * 2^23 trick) and ln2 split in two, a degree-5
// polynomial in b with the fused multiply-adds as written, times 2^n; |n| > 192 gives 0 or
// inf. Not the libm expf: SwiGLU must round as llama.cpp's does.
inline float expf_poly(float x) {
  const float r = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
  return std::ldexp(j, static_cast<int>(n));
}

}  // namespace tessera::cpu
