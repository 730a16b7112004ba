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
#include <cstdint>

#include "core/dtype.h"

namespace tessera::cpu {

// --- scalar references (test oracles) ---
void dequantize_row_ref(DType t, const void* src, float* dst, int64_t n);
// Supported for every vec dot type (F32, F16, BF16, Q8_0, Q8_1, Q8_K) and for the
// weight types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (reference rounding as in ggml).
void quantize_row_ref(DType t, const float* x, void* dst, int64_t n);
float vec_dot_ref(DType t, int64_t n, const void* w, const void* x);

// --- optimized, runtime-dispatched ---
DType vec_dot_type(DType t);
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
void quantize_row(DType t, const float* x, void* dst, int64_t n);

// Dot of weight row `w` (type t) with activation row `x` (type vec_dot_type(t)).
using VecDotFn = float (*)(int64_t n, const void* w, const void* x);
VecDotFn vec_dot_fn(DType t);  // resolved once per process; never null for supported t
inline float vec_dot(DType t, int64_t n, const void* w, const void* x) {
  return vec_dot_fn(t)(n, w, x);
}

// fp16 / bf16 scalar conversions (round-to-nearest-even, as ggml).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

// Which SIMD level the dispatcher picked: "avx512", "avx2" or "scalar". The environment
// variable TESSERA_SIMD=scalar|avx2|avx512 caps it (it never raises it above what the CPU has).
const char* simd_level();

// Testing / benchmarking hooks: the kernel that SIMD level `level` ("scalar", "avx2",
// "avx512") would use for type t, ignoring TESSERA_SIMD. nullptr when this CPU lacks the
// level or t has no such kernel. A level without its own kernel for t returns the next
// lower level's kernel.
using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeRowFn = void (*)(const float* x, void* dst, int64_t n);
VecDotFn vec_dot_fn_for(DType t, const char* level);
DequantizeRowFn dequantize_row_fn_for(DType t, const char* level);
QuantizeRowFn quantize_row_fn_for(DType t, const char* level);

}  // namespace tessera::cpu
