// Scalar row code of every type (quant.h). Plain C++ compiled for baseline x86-64 (no FMA
// contraction possible), with the same rounding and integer summation order as ggml's
// reference code so that dequantized values and quantized blocks match GGUF/ggml bit for
// bit.
#include "quant/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "quant/blocks.h"

namespace tessera::quant {
// ---------------------------------------------------------------- fp16 / bf16 scalars

namespace {

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round-half-to-even to an integer, as ggml's nearest_int (valid for |f| <= 2^22): adding
// 1.5 * 2^23 puts the integer part in the low mantissa bits, rounded by the FPU (RNE).
inline int nearest_int(float f) {
  const float v = f + 12582912.f;
  return static_cast<int>(f32_bits(v) & 0x007fffff) - 0x00400000;
}

}  // namespace

uint16_t fp32_to_fp16(float f) {
  uint32_t x = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffff;
  if (x >= 0x7f800000) {
    // Inf stays inf; NaN keeps its top payload bits and is made quiet (as F16C does).
    return x == 0x7f800000 ? (sign | 0x7c00) : (sign | 0x7e00 | ((x >> 13) & 0x3ff));
  }
  if (x >= 0x47800000) return sign | 0x7c00;  // >= 65536: overflows to inf
  if (x < 0x38800000) {
    // Result is subnormal (or zero): adding 0.5f aligns the value so that the FPU's RNE
    // rounds it at 2^-24, the fp16 subnormal step; the low bits are then the mantissa.
    const float t = bits_f32(x) + 0.5f;
    return sign | static_cast<uint16_t>(f32_bits(t) - 0x3f000000u);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even.
  // A carry out of the mantissa correctly bumps the exponent (up to inf at 65520).
  const uint32_t odd = (x >> 13) & 1;
  x += (static_cast<uint32_t>(15 - 127) << 23) + 0xfff + odd;
  return sign | static_cast<uint16_t>(x >> 13);
}

uint16_t fp32_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

namespace {

inline float h2f(uint16_t h) {
  return fp16_to_fp32(h);
}

// ---------------------------------------------------------------- dequantize

void deq_f32(const void* src, float* y, int64_t n) {
  std::memcpy(y, src, n * sizeof(float));
}
void deq_f16(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) y[i] = h2f(x[i]);
}
void deq_bf16(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(x[i]);
}

void deq_q4_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / QK4_0; ++i, y += QK4_0) {
    const float d = h2f(x[i].d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      y[j] = static_cast<float>((x[i].qs[j] & 0xF) - 8) * d;
      y[j + QK4_0 / 2] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void deq_q4_1(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_1*>(src);
  for (int64_t i = 0; i < n / QK4_1; ++i, y += QK4_1) {
    const float d = h2f(x[i].d), m = h2f(x[i].m);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      y[j] = static_cast<float>(x[i].qs[j] & 0xF) * d + m;
      y[j + QK4_1 / 2] = static_cast<float>(x[i].qs[j] >> 4) * d + m;
    }
  }
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void deq_q5_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_0*>(src);
  for (int64_t i = 0; i < n / QK5_0; ++i, y += QK5_0) {
    const float d = h2f(x[i].d);
    const uint32_t qh = load_u32(x[i].qh);
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int h0 = ((qh >> j) & 1) << 4, h1 = ((qh >> (j + 16)) & 1) << 4;
      y[j] = static_cast<float>(((x[i].qs[j] & 0xF) | h0) - 16) * d;
      y[j + QK5_0 / 2] = static_cast<float>(((x[i].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void deq_q5_1(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_1*>(src);
  for (int64_t i = 0; i < n / QK5_1; ++i, y += QK5_1) {
    const float d = h2f(x[i].d), m = h2f(x[i].m);
    const uint32_t qh = load_u32(x[i].qh);
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int h0 = ((qh >> j) & 1) << 4, h1 = ((qh >> (j + 16)) & 1) << 4;
      y[j] = static_cast<float>((x[i].qs[j] & 0xF) | h0) * d + m;
      y[j + QK5_1 / 2] = static_cast<float>((x[i].qs[j] >> 4) | h1) * d + m;
    }
  }
}

void deq_q8_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / QK8_0; ++i, y += QK8_0) {
    const float d = h2f(x[i].d);
    for (int j = 0; j < QK8_0; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

void deq_q8_1(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_1*>(src);
  for (int64_t i = 0; i < n / QK8_1; ++i, y += QK8_1) {
    const float d = h2f(x[i].d);
    for (int j = 0; j < QK8_1; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

void deq_q2_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ2_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
    for (int e = 0; e < QK_K; ++e) {
      const uint8_t sc = x[i].scales[e / 16];
      const float dl = d * static_cast<float>(sc & 0xF);
      const float ml = dmin * static_cast<float>(sc >> 4);
      const int q = (x[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      y[e] = dl * static_cast<float>(q) - ml;
    }
  }
}

void deq_q3_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ3_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    const float d = h2f(x[i].d);
    int8_t sc[16];
    q3k_scales(x[i].scales, sc);
    for (int e = 0; e < QK_K; ++e) {
      const float dl = d * static_cast<float>(sc[e / 16]);
      int q = (x[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      if (!((x[i].hmask[e % 32] >> (e / 32)) & 1)) q -= 4;
      y[e] = dl * static_cast<float>(q);
    }
  }
}

void deq_q4_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
    for (int s = 0; s < 8; ++s) {
      int sc, m;
      k4_scale_min(s, x[i].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      const uint8_t* q = x[i].qs + 32 * (s / 2);
      const int shift = 4 * (s & 1);
      for (int l = 0; l < 32; ++l) {
        y[32 * s + l] = d1 * static_cast<float>((q[l] >> shift) & 0xF) - m1;
      }
    }
  }
}

void deq_q5_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
    for (int s = 0; s < 8; ++s) {
      int sc, m;
      k4_scale_min(s, x[i].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      const uint8_t* q = x[i].qs + 32 * (s / 2);
      const int shift = 4 * (s & 1);
      for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 0xF) | (((x[i].qh[l] >> s) & 1) << 4);
        y[32 * s + l] = d1 * static_cast<float>(v) - m1;
      }
    }
  }
}

// Q6_K element e (0..255) as a signed 6-bit value in [-32, 31].
inline int q6k_value(const BlockQ6_K& b, int e) {
  const int h = e / 128, r = e % 128;
  const int lo = (b.ql[64 * h + r % 64] >> (4 * (r / 64))) & 0xF;
  const int hi = (b.qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
  return (lo | (hi << 4)) - 32;
}

void deq_q6_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ6_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    const float d = h2f(x[i].d);
    for (int e = 0; e < QK_K; ++e) {
      y[e] = d * static_cast<float>(x[i].scales[e / 16]) * static_cast<float>(q6k_value(x[i], e));
    }
  }
}

void deq_q8_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_K*>(src);
  for (int64_t i = 0; i < n / QK_K; ++i, y += QK_K) {
    for (int e = 0; e < QK_K; ++e) y[e] = x[i].d * static_cast<float>(x[i].qs[e]);
  }
}

// ---------------------------------------------------------------- quantize

void q_f32(const float* x, void* dst, int64_t n) {
  std::memcpy(dst, x, n * sizeof(float));
}
void q_f16(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}
void q_bf16(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

// Symmetric 4/5-bit: d = -(value of largest magnitude) / 2^(bits-1), q = trunc(x/d + offset).
void q_q4_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < n / QK4_0; ++i, x += QK4_0) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < QK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int q1 =
          std::min(15, static_cast<int>(static_cast<int8_t>(x[j + QK4_0 / 2] * id + 8.5f)));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void q_q5_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_0*>(dst);
  for (int64_t i = 0; i < n / QK5_0; ++i, x += QK5_0) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < QK5_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -16;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
      const int q1 =
          std::min(31, static_cast<int>(static_cast<int8_t>(x[j + QK5_0 / 2] * id + 16.5f)));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + QK5_0 / 2);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

// Asymmetric 4/5-bit: m = min, d = (max - min) / (2^bits - 1), q = trunc((x - m)/d + 0.5).
inline void minmax_block(const float* x, float* min, float* max) {
  *min = 3.402823466e+38f;
  *max = -3.402823466e+38f;
  for (int j = 0; j < 32; ++j) {
    if (x[j] < *min) *min = x[j];
    if (x[j] > *max) *max = x[j];
  }
}

void q_q4_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_1*>(dst);
  for (int64_t i = 0; i < n / QK4_1; ++i, x += QK4_1) {
    float min, max;
    minmax_block(x, &min, &max);
    const float d = (max - min) / 15;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
      const int q1 =
          std::min(15, static_cast<int>(static_cast<int8_t>((x[j + QK4_1 / 2] - min) * id + 0.5f)));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void q_q5_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_1*>(dst);
  for (int64_t i = 0; i < n / QK5_1; ++i, x += QK5_1) {
    float min, max;
    minmax_block(x, &min, &max);
    const float d = (max - min) / 31;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>(static_cast<uint8_t>((x[j] - min) * id + 0.5f)));
      const int q1 = std::min(
          31, static_cast<int>(static_cast<uint8_t>((x[j + QK5_1 / 2] - min) * id + 0.5f)));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + QK5_1 / 2);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

// Symmetric 8-bit: d = amax / 127, q = roundf(x / d) (half away from zero).
void q_q8_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    float amax = 0.f;
    for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

// Q8_1 is only ever an activation type, so it follows ggml's x86 quantize_row_q8_1 (what
// llama.cpp runs on this kind of machine) rather than the generic reference: the multiplier
// is 127 / amax (not 1 / d) and rounding is half to even.
void q_q8_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t i = 0; i < n / QK8_1; ++i, x += QK8_1) {
    float amax = 0.f;
    for (int j = 0; j < QK8_1; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = amax != 0.f ? 127.f / amax : 0.0f;
    y[i].d = fp32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
      sum += y[i].qs[j];
    }
    y[i].s = fp32_to_fp16(static_cast<float>(sum) * d);
  }
}

// Q8_K: scale by -127 / (value of largest magnitude), round half to even, clamp to 127 (the
// largest-magnitude value maps to -127, so -128 never occurs); d = 1 / iscale in fp32.
void q_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < QK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * j + l];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

// ---------------------------------------------------------------- vec_dot
// Integer sums per block, then one float multiply-add per block, in ggml's order.

float dot_f32(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const float*>(vw);
  const auto* x = static_cast<const float*>(vx);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(w[i] * x[i]);
  return static_cast<float>(sum);
}

// F16 / BF16 weights times float32 activations (vec_dot_type is F32 for both).
float dot_f16(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const uint16_t*>(vw);
  const auto* x = static_cast<const float*>(vx);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(h2f(w[i]) * x[i]);
  return static_cast<float>(sum);
}

float dot_bf16(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const uint16_t*>(vw);
  const auto* x = static_cast<const float*>(vx);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(bf16_to_fp32(w[i]) * x[i]);
  return static_cast<float>(sum);
}

float dot_q4_0(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ4_0*>(vw);
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  float sumf = 0.f;
  for (int64_t i = 0; i < n / QK4_0; ++i) {
    int s0 = 0, s1 = 0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      s0 += ((w[i].qs[j] & 0xF) - 8) * x[i].qs[j];
      s1 += ((w[i].qs[j] >> 4) - 8) * x[i].qs[j + QK4_0 / 2];
    }
    // One fma per block on its exact sum: the SIMD kernels' order, bit for bit.
    sumf = std::fma(h2f(w[i].d) * h2f(x[i].d), static_cast<float>(s0 + s1), sumf);
  }
  return sumf;
}

float dot_q4_1(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ4_1*>(vw);
  const auto* x = static_cast<const BlockQ8_1*>(vx);
  float sumf = 0.f;
  for (int64_t i = 0; i < n / QK4_1; ++i) {
    int s0 = 0, s1 = 0;
    for (int j = 0; j < QK4_1 / 2; ++j) {
      s0 += (w[i].qs[j] & 0xF) * x[i].qs[j];
      s1 += (w[i].qs[j] >> 4) * x[i].qs[j + QK4_1 / 2];
    }
    // sum (d_w q_w + m_w) d_x q_x = d_w d_x sum(q_w q_x) + m_w * s_x.
    sumf += (h2f(w[i].d) * h2f(x[i].d)) * static_cast<float>(s0 + s1) + h2f(w[i].m) * h2f(x[i].s);
  }
  return sumf;
}

float dot_q5_0(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ5_0*>(vw);
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  float sumf = 0.f;
  for (int64_t i = 0; i < n / QK5_0; ++i) {
    const uint32_t qh = load_u32(w[i].qh);
    int s0 = 0, s1 = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int q0 = ((w[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16;
      const int q1 = ((w[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
      s0 += q0 * x[i].qs[j];
      s1 += q1 * x[i].qs[j + QK5_0 / 2];
    }
    sumf += (h2f(w[i].d) * h2f(x[i].d)) * static_cast<float>(s0 + s1);
  }
  return sumf;
}

float dot_q5_1(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ5_1*>(vw);
  const auto* x = static_cast<const BlockQ8_1*>(vx);
  float sumf = 0.f;
  for (int64_t i = 0; i < n / QK5_1; ++i) {
    const uint32_t qh = load_u32(w[i].qh);
    int s0 = 0, s1 = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int q0 = (w[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      const int q1 = (w[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      s0 += q0 * x[i].qs[j];
      s1 += q1 * x[i].qs[j + QK5_1 / 2];
    }
    sumf += (h2f(w[i].d) * h2f(x[i].d)) * static_cast<float>(s0 + s1) + h2f(w[i].m) * h2f(x[i].s);
  }
  return sumf;
}

float dot_q8_0(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ8_0*>(vw);
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  float sumf = 0.f;
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    int s = 0;
    for (int j = 0; j < QK8_0; ++j) s += w[i].qs[j] * x[i].qs[j];
    sumf += static_cast<float>(s) * (h2f(w[i].d) * h2f(x[i].d));
  }
  return sumf;
}

// The k-quant dots below follow ggml's portable reference: each super-block's products
// q_w * q_x are summed in int32 per 32- or 16-element sub-block, weighted by the integer
// sub-block scale into 8 int32 lanes (lane = element index mod 8), and the lanes are
// scaled by d_w * d_x into 8 float accumulators that are added up at the end. Mins are
// folded in through Q8_K's bsums: sum_e m_e * q_x[e] = sum_sub m_sub * bsum_sub.

// Adds scale * sum over `len` (a multiple of 8) elements of q_w*q_x into the 8 lanes.
inline void lane_madd(int32_t lanes[8], int scale, const int8_t* qw, const int8_t* qx, int len) {
  for (int k = 0; k < len; k += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += scale * (qw[k + l] * qx[k + l]);
  }
}

float dot_q2_k(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ2_K*>(vw);
  const auto* x = static_cast<const BlockQ8_K*>(vx);
  float sumf = 0.f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    int summs = 0;
    for (int j = 0; j < 16; ++j) summs += x[i].bsums[j] * (w[i].scales[j] >> 4);
    const float dall = x[i].d * h2f(w[i].d);
    const float dmin = x[i].d * h2f(w[i].dmin);
    int isum = 0;
    for (int sb = 0; sb < 16; ++sb) {  // 16-element sub-blocks
      int s = 0;
      for (int l = 0; l < 16; ++l) {
        const int e = 16 * sb + l;
        const int q = (w[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        s += x[i].qs[e] * q;
      }
      isum += (w[i].scales[sb] & 0xF) * s;
    }
    sumf += dall * static_cast<float>(isum) - dmin * static_cast<float>(summs);
  }
  return sumf;
}

float dot_q3_k(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ3_K*>(vw);
  const auto* x = static_cast<const BlockQ8_K*>(vx);
  float sums[8] = {};
  for (int64_t i = 0; i < n / QK_K; ++i) {
    int8_t q[QK_K];
    for (int e = 0; e < QK_K; ++e) {
      int v = (w[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      if (!((w[i].hmask[e % 32] >> (e / 32)) & 1)) v -= 4;
      q[e] = static_cast<int8_t>(v);
    }
    int8_t sc[16];
    q3k_scales(w[i].scales, sc);
    int32_t lanes[8] = {};
    for (int j = 0; j < 16; ++j) lane_madd(lanes, sc[j], q + 16 * j, x[i].qs + 16 * j, 16);
    const float d = h2f(w[i].d) * x[i].d;
    for (int l = 0; l < 8; ++l) sums[l] += d * static_cast<float>(lanes[l]);
  }
  float sumf = 0.f;
  for (int l = 0; l < 8; ++l) sumf += sums[l];
  return sumf;
}

template <bool kFive, typename Block>
float dot_q45_k(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const Block*>(vw);
  const auto* x = static_cast<const BlockQ8_K*>(vx);
  float sums[8] = {};
  float sumf = 0.f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    int8_t q[QK_K];
    for (int s = 0; s < 8; ++s) {
      for (int l = 0; l < 32; ++l) {
        int v = (w[i].qs[32 * (s / 2) + l] >> (4 * (s & 1))) & 0xF;
        if constexpr (kFive) v |= ((w[i].qh[l] >> s) & 1) << 4;
        q[32 * s + l] = static_cast<int8_t>(v);
      }
    }
    int sc[8], m[8];
    for (int s = 0; s < 8; ++s) k4_scale_min(s, w[i].scales, &sc[s], &m[s]);
    int sumi = 0;
    for (int j = 0; j < 16; ++j) sumi += x[i].bsums[j] * m[j / 2];
    int32_t lanes[8] = {};
    for (int s = 0; s < 8; ++s) lane_madd(lanes, sc[s], q + 32 * s, x[i].qs + 32 * s, 32);
    const float d = h2f(w[i].d) * x[i].d;
    for (int l = 0; l < 8; ++l) sums[l] += d * static_cast<float>(lanes[l]);
    const float dmin = h2f(w[i].dmin) * x[i].d;
    sumf -= dmin * static_cast<float>(sumi);
  }
  for (int l = 0; l < 8; ++l) sumf += sums[l];
  return sumf;
}

float dot_q6_k(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ6_K*>(vw);
  const auto* x = static_cast<const BlockQ8_K*>(vx);
  float sums[8] = {};
  for (int64_t i = 0; i < n / QK_K; ++i) {
    int8_t q[QK_K];
    for (int e = 0; e < QK_K; ++e) q[e] = static_cast<int8_t>(q6k_value(w[i], e));
    int32_t lanes[8] = {};
    for (int j = 0; j < 16; ++j) lane_madd(lanes, w[i].scales[j], q + 16 * j, x[i].qs + 16 * j, 16);
    const float d = h2f(w[i].d) * x[i].d;
    for (int l = 0; l < 8; ++l) sums[l] += d * static_cast<float>(lanes[l]);
  }
  float sumf = 0.f;
  for (int l = 0; l < 8; ++l) sumf += sums[l];
  return sumf;
}

inline int slot(DType t) {
  return static_cast<int>(t);
}

}  // namespace

namespace {

// Row functions by type id (DType values below kSlots; the repacked types are above).
constexpr int kSlots = 32;
struct RowTable {
  DequantizeRowFn dequantize[kSlots] = {};
  QuantizeRowFn quantize[kSlots] = {};
  VecDotFn vec_dot[kSlots] = {};
};

const RowTable& table() {
  static const RowTable t = [] {
    RowTable r;
    r.dequantize[slot(DType::F32)] = deq_f32;
    r.dequantize[slot(DType::F16)] = deq_f16;
    r.dequantize[slot(DType::BF16)] = deq_bf16;
    r.dequantize[slot(DType::Q4_0)] = deq_q4_0;
    r.dequantize[slot(DType::Q4_1)] = deq_q4_1;
    r.dequantize[slot(DType::Q5_0)] = deq_q5_0;
    r.dequantize[slot(DType::Q5_1)] = deq_q5_1;
    r.dequantize[slot(DType::Q8_0)] = deq_q8_0;
    r.dequantize[slot(DType::Q8_1)] = deq_q8_1;
    r.dequantize[slot(DType::Q2_K)] = deq_q2_k;
    r.dequantize[slot(DType::Q3_K)] = deq_q3_k;
    r.dequantize[slot(DType::Q4_K)] = deq_q4_k;
    r.dequantize[slot(DType::Q5_K)] = deq_q5_k;
    r.dequantize[slot(DType::Q6_K)] = deq_q6_k;
    r.dequantize[slot(DType::Q8_K)] = deq_q8_k;

    r.quantize[slot(DType::F32)] = q_f32;
    r.quantize[slot(DType::F16)] = q_f16;
    r.quantize[slot(DType::BF16)] = q_bf16;
    r.quantize[slot(DType::Q4_0)] = q_q4_0;
    r.quantize[slot(DType::Q4_1)] = q_q4_1;
    r.quantize[slot(DType::Q5_0)] = q_q5_0;
    r.quantize[slot(DType::Q5_1)] = q_q5_1;
    r.quantize[slot(DType::Q8_0)] = q_q8_0;
    r.quantize[slot(DType::Q8_1)] = q_q8_1;
    r.quantize[slot(DType::Q8_K)] = q_q8_k;

    r.vec_dot[slot(DType::F32)] = dot_f32;
    r.vec_dot[slot(DType::F16)] = dot_f16;
    r.vec_dot[slot(DType::BF16)] = dot_bf16;
    r.vec_dot[slot(DType::Q4_0)] = dot_q4_0;
    r.vec_dot[slot(DType::Q4_1)] = dot_q4_1;
    r.vec_dot[slot(DType::Q5_0)] = dot_q5_0;
    r.vec_dot[slot(DType::Q5_1)] = dot_q5_1;
    r.vec_dot[slot(DType::Q8_0)] = dot_q8_0;
    r.vec_dot[slot(DType::Q2_K)] = dot_q2_k;
    r.vec_dot[slot(DType::Q3_K)] = dot_q3_k;
    r.vec_dot[slot(DType::Q4_K)] = dot_q45_k<false, BlockQ4_K>;
    r.vec_dot[slot(DType::Q5_K)] = dot_q45_k<true, BlockQ5_K>;
    r.vec_dot[slot(DType::Q6_K)] = dot_q6_k;
    return r;
  }();
  return t;
}

[[noreturn]] void unsupported(const char* what, DType t) {
  const DTypeInfo* info = dtype_info(static_cast<uint32_t>(t));
  throw Error(std::string(what) + ": unsupported type " +
              (info ? info->name : std::to_string(static_cast<uint32_t>(t))));
}

template <typename Fn>
Fn lookup(const Fn (&fns)[kSlots], DType t) {
  const int s = slot(t);
  return s >= 0 && s < kSlots ? fns[s] : nullptr;
}

}  // namespace

DequantizeRowFn dequantize_row_fn(DType t) {
  return lookup(table().dequantize, t);
}
QuantizeRowFn quantize_row_fn(DType t) {
  return lookup(table().quantize, t);
}
VecDotFn vec_dot_fn(DType t) {
  return lookup(table().vec_dot, t);
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const DequantizeRowFn f = dequantize_row_fn(t);
  if (!f) unsupported("dequantize_row", t);
  f(src, dst, n);
}

void quantize_row(DType t, const float* x, void* dst, int64_t n) {
  const QuantizeRowFn f = quantize_row_fn(t);
  if (!f) unsupported("quantize_row", t);
  f(x, dst, n);
}

float vec_dot(DType t, int64_t n, const void* w, const void* x) {
  const VecDotFn f = vec_dot_fn(t);
  if (!f) unsupported("vec_dot", t);
  return f(n, w, x);
}

DType vec_dot_type(DType t) {
  switch (plain_type(t)) {
    // Half-precision weights meet float32 activations: rounding the activations to f16
    // (or bf16's 8 bits) as well would double the error of a checkpoint whose weights are
    // exact in that type, for no bandwidth saving (weights dominate the bytes read).
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      return DType::F32;
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
      return DType::Q8_0;
    case DType::Q4_1:
    case DType::Q5_1:
      return DType::Q8_1;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return DType::Q8_K;
    default:
      unsupported("vec_dot_type", t);
  }
}

}  // namespace tessera::quant
