// Per-type row kernels for the CPU backend: dequantization, activation quantization
// and dot products, each with a plain scalar reference (`*_ref`) beside the optimized
// version chosen at run time by CPU detection (AVX2/FMA, AVX-512 where present).
//
// Dot products follow ggml's scheme: activations are first converted to the weight
// type's "vec dot type" (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the
// k-quants, F16 for F16, BF16 for BF16, F32 for F32) and the dot is taken between a
// weight row and an activation row in that type. n is always a multiple of the
// weight type's block size.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "quant/quant.h"

namespace tessera::cpu {

// The scalar row functions (test oracles, and this backend's "scalar" level) are the
// backend-independent ones of quant/quant.h.
using quant::bf16_to_fp32;
using quant::fp16_to_fp32;
using quant::fp32_to_bf16;
using quant::fp32_to_fp16;
using quant::vec_dot_type;

// --- optimized, runtime-dispatched ---
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
void quantize_row(DType t, const float* x, void* dst, int64_t n);

// Dot of weight row `w` (type t) with activation row `x` (type vec_dot_type(t)).
using VecDotFn = quant::VecDotFn;
VecDotFn vec_dot_fn(DType t);  // resolved once per process; never null for supported t
inline float vec_dot(DType t, int64_t n, const void* w, const void* x) {
  return vec_dot_fn(t)(n, w, x);
}

// --- batched dot products (prompt processing) ---
// y[c * y_stride + r] = dot(w + r * w_stride, x + c * x_stride) for r < nr, c < nc, with
// 1 <= nr, nc <= kGemmTile: a tile of weight rows against a tile of activation rows, each
// weight block unpacked once for all nc activations. Every result is bit-identical to
// vec_dot_fn(t) on the same pair, whatever nr and nc: a token's output never depends on
// which other tokens share its batch. nullptr when t has no tiled kernel at this level.
constexpr int kGemmTile = 4;
using GemmTileFn = void (*)(int64_t n, const void* w, size_t w_stride, int nr, const void* x,
                            size_t x_stride, int nc, float* y, int64_t y_stride);
GemmTileFn gemm_tile_fn(DType t);

// --- panel GEMM (batches of tokens) ---
// A panel holds kPanel activation rows of a 32-element-block vec dot type (Q8_0, Q8_1),
// re-laid out so that one 512-bit vector carries the same 4-byte group of every token:
// the weight's 4 bytes are broadcast and one VNNI instruction does kPanel tokens at once.
// pack_panel writes the panel of activation rows x[c * x_stride], c < nc (<= kPanel; the
// missing tokens are zeros). panel_gemm_fn(t) then gives, for the panels p at
// panels + p * panel_stride holding tokens c = p * kPanel + (0 .. kPanel - 1):
// y[c * y_stride + r] = dot(w + r * w_stride, token c) for r < nr (<= kPanelRows),
// c < n_tokens, every result bit-identical to vec_dot_fn(t) on the same pair.
// nullptr when t has none.
constexpr int kPanel = 16;
constexpr int kPanelRows = 8;
size_t panel_bytes(DType vec_dot_t, int64_t n);  // bytes of one panel of n-element rows
void pack_panel(DType vec_dot_t, int64_t n, const void* x, size_t x_stride, int nc, void* dst);
using PanelGemmFn = void (*)(int64_t n, const void* w, size_t w_stride, int nr, const void* panels,
                             size_t panel_stride, int n_tokens, float* y, int64_t y_stride);
PanelGemmFn panel_gemm_fn(DType t);
PanelGemmFn panel_gemm_fn_for(DType t, const char* level);

// --- row-interleaved weights (Q4_0_R8, Q8_0_R8) ---
// A Q4_0 or Q8_0 matrix whose row count is a multiple of kRepackRows may be rewritten in
// place (repack_rows) into groups of 8 rows: group g (rows 8g .. 8g + 7, at byte 8g *
// row_size) is nb = n / 32 consecutive "group blocks", block i of the 8 rows each:
//   Q4_0_R8, 144 bytes: fp16 d[8] (row r's scale at d[r]), then 128 bytes of nibbles. Byte
//     64k + 4j + b holds, in its low nibble, the code q of row j / 2, element 4 * (2v + j % 2)
//     + b for v = 2k, and in its high nibble the same for v = 2k + 1.
//   Q8_0_R8, 272 bytes: fp16 d[8], then byte 64v + 4j + b = (code of row j / 2, element
//     4 * (2v + j % 2) + b) + 128, as an unsigned byte.
// So the 64 bytes of "vector" v (v < 4; for Q4_0 after the nibble split) are 16 int32 lanes,
// lane j = (row j / 2, the 4-element group 2v + j % 2): elements 8v .. 8v + 7 of the 8 rows.
// Its activation operand is those 8 bytes of the activation block broadcast to every
// 64-bit lane: one broadcast load and one VNNI instruction per vector, no per-row
// unpacking, and the activations stay as small as the Q8_0 row (see gemv_r8_prepare). Nothing but
// the kernels below may read these rows (Tensor::row asserts a group start; dequantize_row /
// vec_dot_fn refuse the types). The R8 kernels exist at the avx512 level only: can_repack(t) says
// whether t (plain) has them at the active SIMD level, i.e. whether repacking pays and will be
// understood.
bool can_repack(DType t);
DType repacked_type(DType t);  // Q4_0 -> Q4_0_R8, Q8_0 -> Q8_0_R8
// Rewrites rows [0, rows) of the plain matrix at data (type t, n = cols) in place into the
// R8 layout; rows % kRepackRows == 0. Uses a buffer of one group's bytes.
void repack_rows(DType t, void* data, int64_t rows, int64_t n);
// Row r (< 8) of the group at `group` (repacked type rt) as a plain row of n elements,
// byte for byte what it was before repack_rows.
void unpack_row_r8(DType rt, const void* group, int r, void* dst, int64_t n);
// dequantize_row of that plain row.
void dequantize_row_r8(DType rt, const void* group, int r, float* dst, int64_t n);

// GEMV over groups: y[c * y_stride + 8g + r] = dot(row 8g + r, token c) for g < n_groups,
// r < 8, c < nc (1 <= nc; any count, taken a few tokens at a time), bit-identical to
// vec_dot_fn(plain type) on the plain row. w is the first group; the tokens are
// activation rows first converted by the prepare function (from a Q8_0 row of n elements
// to gemv_r8_act_bytes(rt, n) bytes at xp + c * xp_stride; once per token per call, the
// operand every group shares).
size_t gemv_r8_act_bytes(DType rt, int64_t n);
using GemvR8PrepareFn = void (*)(int64_t n, const void* x, void* dst);
using GemvR8Fn = void (*)(int64_t n, const void* w, int64_t n_groups, const void* xp,
                          size_t xp_stride, int nc, float* y, int64_t y_stride);
GemvR8PrepareFn gemv_r8_prepare_fn(DType rt);  // nullptr when none at the active level
GemvR8Fn gemv_r8_fn(DType rt);
GemvR8PrepareFn gemv_r8_prepare_fn_for(DType rt, const char* level);
GemvR8Fn gemv_r8_fn_for(DType rt, const char* level);
// Scalar reference of the GEMV (test oracle), from plain Q8_0 activation rows x + c * x_stride.
void gemv_r8_ref(DType rt, int64_t n, const void* w, int64_t n_groups, const void* x,
                 size_t x_stride, int nc, float* y, int64_t y_stride);
// The panel GEMM (above) of repacked weights is panel_gemm_fn(rt): w is the tile's group
// (w_stride unused) and nr is always kPanelRows.

// --- flash attention over fp16 K/V rows (the KV cache's layout) ---
// Feeds keys/values j < n (k + j * stride, v + j * stride, fp16 bits) to the online softmax of
// nq query heads (q16: [nq, head_dim] fp16 bits), in the float order of llama.cpp's CPU flash
// attention (one-chunk path, AVX-512 build), so both engines round alike. For each head h and
// each key j in order:
//   sc = dot16(k_j, q_h) * scale              (dot16: see flash_attn_ref in quants_ref.cpp)
//   sc > m[h]:  ms = exp(m[h] - sc), m[h] = sc, acc_h = fp16(acc_h * ms), vs = 1
//   otherwise:  ms = 1, vs = exp(sc - m[h])
//   acc_h[d] = fp16(fma(v_j[d], vs, acc_h[d]))    (acc: [nq, head_dim] fp16 bits)
//   s[h] = fma(s[h], ms, vs)
// Start with m = -inf, s = 0, acc = 0; the attention output is then acc_h * (1 / s[h]).
using FlashAttnFn = void (*)(const uint16_t* q16, int nq, int head_dim, const uint16_t* k,
                             const uint16_t* v, int64_t stride, int n, float scale, float* m,
                             float* s, uint16_t* acc);
FlashAttnFn flash_attn_fn();

// --- tiled flash attention over fp16 K/V (llama.cpp's path for 64 or more query rows) ---
// Up to kTiledRows query rows of one sequence (row r at position pos[r] sees keys 0..pos[r])
// and the nq query heads that share one KV head. Key/value j is the fp16 row at
// k/v + slot(j) * kv_stride, slot(j) = block_table[j / block_size] * block_size + j %
// block_size. Per (row, head), in the float order of llama.cpp's tiled CPU flash attention
// (AVX-512 build), keys in tiles of 64 from 0:
//   kq_k = (sum over d in order of fma(q[d], k_j[d], .) from 0) * scale + 0, or -inf for
//          j > pos (q in f32, not rounded to fp16)
//   tile max t = max over the 64 (in order); a tile that is all -inf is skipped
//   M' = fmax(M, t); if M' > M: ms = expf(M - M') (libm), acc *= ms, S *= ms; M = M'
//   p_k = exp(kq_k - M) by ggml's polynomial (expf_poly); S = float(double(S) + sum over
//          the tile's four 16-key blocks, in order, of double(tree sum of the block)) with
//          the tree (k + (k + 8)), then + 4, then (0 + 2) + (1 + 3)
//   acc[d] = fma(v_j[d], p_k, acc[d]) over the visible keys in order
// output = acc * (S == 0 ? 0 : 1 / S). Start: M = -inf, S = 0, acc = 0.
constexpr int kTiledRows = 16;
struct TiledAttnArgs {
  const float* q = nullptr;  // row r, head h: q + r * q_stride + h * head_dim
  int64_t q_stride = 0;
  int n_rows = 0;                // <= kTiledRows
  const int32_t* pos = nullptr;  // [n_rows]
  int nq = 0, head_dim = 0;
  const uint16_t* k = nullptr;  // the KV head's first element in slot 0
  const uint16_t* v = nullptr;
  int64_t kv_stride = 0;  // elements from one slot to the next
  const int32_t* block_table = nullptr;
  int block_size = 16;
  float scale = 1.0f;
  float* out = nullptr;  // row r, head h: out + r * out_stride + h * head_dim
  int64_t out_stride = 0;
};
using FlashAttnTiledFn = void (*)(const TiledAttnArgs& a);
FlashAttnTiledFn flash_attn_tiled_fn();

// y[i] = expf(x[i]), bit for bit the libm expf the scalar reference calls.
using ExpBatchFn = void (*)(const float* x, float* y, int64_t n);

// --- activations ---
// gate[i] = silu(gate[i]) * up[i] for i < n, as llama.cpp's AVX-512 build computes SwiGLU
// (ggml_vec_swiglu_f32): exp by ggml's polynomial for the first n & ~15 elements, by libm
// for the rest; see silu_mul_ref in quants_ref.cpp.
using SiluMulFn = void (*)(float* gate, const float* up, int64_t n);
SiluMulFn silu_mul_fn();
// x[i] = gelu(x[i]) = x Φ(x) for i < n (BERT's exact, erf GELU), Φ from Abramowitz & Stegun
// 7.1.26 (|error| < 1.5e-7) and expf_poly; the same bits at every level (gelu_ref.cpp).
using GeluFn = void (*)(float* x, int64_t n);
GeluFn gelu_fn();

// Which SIMD level the dispatcher picked: "avx512", "avx2" or "scalar". The environment
// variable TESSERA_SIMD=scalar|avx2|avx512 caps it (it never raises it above what the CPU has).
const char* simd_level();

// Testing / benchmarking hooks: the kernel that SIMD level `level` ("scalar", "avx2",
// "avx512") would use for type t, ignoring TESSERA_SIMD. nullptr when this CPU lacks the
// level or t has no such kernel. A level without its own kernel for t returns the next
// lower level's kernel.
using DequantizeRowFn = quant::DequantizeRowFn;
using QuantizeRowFn = quant::QuantizeRowFn;
VecDotFn vec_dot_fn_for(DType t, const char* level);
DequantizeRowFn dequantize_row_fn_for(DType t, const char* level);
QuantizeRowFn quantize_row_fn_for(DType t, const char* level);
GemmTileFn gemm_tile_fn_for(DType t, const char* level);
FlashAttnFn flash_attn_fn_for(const char* level);
ExpBatchFn exp_batch_fn_for(const char* level);
FlashAttnTiledFn flash_attn_tiled_fn_for(const char* level);
SiluMulFn silu_mul_fn_for(const char* level);
GeluFn gelu_fn_for(const char* level);

}  // namespace tessera::cpu
