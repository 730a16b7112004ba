// Rows of the weight and activation types, in plain scalar C++: dequantization,
// quantization and dot products, with the rounding and integer summation order of ggml's
// reference code, so dequantized values and quantized blocks match GGUF files bit for bit.
//
// Backend independent: the loader and `tessera convert` use these to convert weights, and
// every backend's kernels are checked against them (a backend's own kernels for these rows
// must give the same bits, or say where they differ). Rows hold n elements, a multiple of
// the type's block size.
#pragma once
#include <bit>
#include <cstdint>

#include "core/dtype.h"

namespace tessera::quant {

// fp16 / bf16 scalar conversions (round-to-nearest-even, as ggml). The widening ones are
// inline: scalar loops over fp16 caches and weights call them per element.
inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in fp32.
    return std::bit_cast<float>(sign |
                                std::bit_cast<uint32_t>(static_cast<float>(mant) * 0x1p-24f));
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000 | (mant << 13));  // inf / NaN
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}
uint16_t fp32_to_fp16(float f);
inline float bf16_to_fp32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}
uint16_t fp32_to_bf16(float f);

// The type activations are converted to before a dot with a weight row of type t (ggml's
// "vec dot type"): Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the k-quants, F32
// for F32/F16/BF16. A repacked type answers for its plain type. Throws for other types.
DType vec_dot_type(DType t);

using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
using QuantizeRowFn = void (*)(const float* x, void* dst, int64_t n);
using VecDotFn = float (*)(int64_t n, const void* w, const void* x);

// The row functions of type t; nullptr when t has none. Dequantization: every plain type.
// Quantization: every vec dot type (F32, F16, BF16, Q8_0, Q8_1, Q8_K) and the weight types
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0. Dot: every plain weight type, against a row of
// vec_dot_type(t).
DequantizeRowFn dequantize_row_fn(DType t);
QuantizeRowFn quantize_row_fn(DType t);
VecDotFn vec_dot_fn(DType t);

// The same, throwing tessera::Error for a type without one.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
void quantize_row(DType t, const float* x, void* dst, int64_t n);
float vec_dot(DType t, int64_t n, const void* w, const void* x);

}  // namespace tessera::quant
