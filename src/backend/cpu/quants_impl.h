// Private to src/backend/cpu: the ggml/GGUF block structs, scalar fp16 helpers shared by
// every kernel file, and the per-ISA kernel tables the dispatcher fills.
//
// Every struct is bit-identical to its GGUF on-disk block (little-endian, no padding);
// sizes are checked against dtype_info at compile time below. "fp16" fields are IEEE
// binary16 bit patterns.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cpu/quants.h"

namespace tessera::cpu {

constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32;

// y = d * (q - 8); element j < 16 in the low nibble of qs[j], j >= 16 in the high nibble
// of qs[j - 16].
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[QK4_0 / 2];
};
// y = d * q + m; nibbles as Q4_0.
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[QK4_1 / 2];
};
// y = d * (q - 16); low 4 bits as Q4_0, bit 4 of element j is bit j of qh (little-endian u32).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
// y = d * q + m; bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
// y = d * q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[QK8_0];
};
// y = d * q; s = fp16(d * sum(q)) with d before its fp16 rounding (ggml's reference).
struct BlockQ8_1 {
  uint16_t d, s;
  int8_t qs[QK8_1];
};

// K-quants: 256-element super-blocks. Element e of a super-block is addressed as:
//  Q2_K: q = (qs[32*(e/128) + e%32] >> 2*((e%128)/32)) & 3, y = d*(sc&15)*q - dmin*(sc>>4)
//        with sc = scales[e/16].
//  Q3_K: q as Q2_K, minus 4 when bit (e/32) of hmask[e%32] is clear; y = d*(s-32)*q with the
//        6-bit s = scale e/16 unpacked from the 12 scale bytes (low nibbles in bytes 0..7,
//        2 high bits in bytes 8..11).
//  Q4_K: q = nibble of qs[32*(e/64) + e%32] (low for (e/32) even, high for odd);
//        y = d*sc*q - dmin*m, 6-bit (sc, m) of sub-block e/32 from the 12 packed bytes.
//  Q5_K: as Q4_K plus 16 when bit (e/32) of qh[e%32] is set.
//  Q6_K: 4 low bits = nibble of ql[64*(e/128) + e%64] (low for (e%128) < 64, else high),
//        2 high bits = (qh[32*(e/128) + e%32] >> 2*((e%128)/32)) & 3; y = d*scales[e/16]*(q-32).
//  Q8_K: y = d*qs[e] (d is fp32); bsums[i] = sum of qs[16i .. 16i+15].
struct BlockQ2_K {
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  uint16_t d, dmin;
};
struct BlockQ3_K {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[QK_K / 2];
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
struct BlockQ6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);

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

// Unpacks the 6-bit scale and min of sub-block j (0..7) from Q4_K/Q5_K's 12 bytes:
// bytes 0..3 hold scales 0..3 (low 6 bits) and the top 2 bits of scales 4..7; bytes 4..7
// the same for mins; bytes 8..11 the low nibbles of scales 4..7 (low) and mins 4..7 (high).
inline void k4_scale_min(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Unpacks Q3_K's 16 signed scales (already minus 32) from its 12 bytes.
inline void q3k_scales(const uint8_t* s, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    const int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
    out[j] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
}

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
