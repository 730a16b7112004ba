// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c (see CMakeLists.txt) and
// only reached through quants.cpp after the CPU check.
//
// Integer dots use _mm256_maddubs_epi16 (u8 x s8 -> pairwise i16 sums), which needs one
// unsigned operand: unsigned weight codes (Q4_1, Q5_1, k-quants) go in directly; signed
// ones (Q8_0, Q4_0 - 8, Q5_0 - 16) go through |w| and sign(w) * x. No i16 saturation is
// possible: |pair sum| <= 2 * 127 * 127 = 32258.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "backend/cpu/quants_impl.h"
#include "backend/cpu/simd_x86.h"

namespace tessera::cpu {
namespace {

// Sum of u8 * s8 over 32 bytes, as 8 int32 lanes.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
// Sum of s8 * s8 over 32 bytes (neither operand may be -128), as 8 int32 lanes.
inline __m256i dot_s8s8(__m256i a, __m256i b) {
  return dot_u8s8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

// ------------------------------------------------------------------ float dots

float dot_f32(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const float*>(vw);
  const auto* x = static_cast<const float*>(vx);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] =
          _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), acc[k]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), acc[0]);
  }
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += w[i] * x[i];
  return sum;
}

inline __m256 load_f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load_bf16x8(const uint16_t* p) {
  const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

// F16 / BF16 weights times float32 activations.
template <bool kBf16>
float dot_half(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const uint16_t*>(vw);
  const auto* x = static_cast<const float*>(vx);
  auto load = [](const uint16_t* p) { return kBf16 ? load_bf16x8(p) : load_f16x8(p); };
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(load(w + i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), acc[k]);
    }
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load(w + i), _mm256_loadu_ps(x + i), acc[0]);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) {
    sum += (kBf16 ? bf16_to_fp32(w[i]) : h2f(w[i])) * x[i];
  }
  return sum;
}

// ------------------------------------------------------------------ 32-element block dots

float dot_q4_0(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ4_0*>(vw);
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  float acc = 0.f;
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m256i q = _mm256_sub_epi8(unpack_nibbles(w[i].qs), _mm256_set1_epi8(8));
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    // The block's exact sum, one fma per block (the order of quants_avx512.cpp's Q4_0).
    acc = std::fma(h2f(w[i].d) * h2f(x[i].d), static_cast<float>(hsum_i32(dot_s8s8(q, y))), acc);
  }
  return acc;
}

float dot_q4_1(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ4_1*>(vw);
  const auto* x = static_cast<const BlockQ8_1*>(vx);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.f;
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m256i q = unpack_nibbles(w[i].qs);
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256 d = _mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8s8(q, y)), acc);
    mins = std::fma(h2f(w[i].m), h2f(x[i].s), mins);  // the order quants_avx512.cpp keeps
  }
  return hsum(acc) + mins;
}

float dot_q5_0(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ5_0*>(vw);
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m256i q = q5_0_values(w[i]);
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256 d = _mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_s8s8(q, y)), acc);
  }
  return hsum(acc);
}

float dot_q5_1(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ5_1*>(vw);
  const auto* x = static_cast<const BlockQ8_1*>(vx);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.f;
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m256i hi = _mm256_and_si256(bits_to_bytes(w[i].qh), _mm256_set1_epi8(0x10));
    const __m256i q = _mm256_or_si256(unpack_nibbles(w[i].qs), hi);
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256 d = _mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8s8(q, y)), acc);
    mins += h2f(w[i].m) * h2f(x[i].s);
  }
  return hsum(acc) + mins;
}

float dot_q8_0(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ8_0*>(vw);
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs));
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256 d = _mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_s8s8(q, y)), acc);
  }
  return hsum(acc);
}

// ------------------------------------------------------------------ k-quant dots

template <bool kFive, typename Block>
float dot_q45_k(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const Block*>(vw);
  const auto* x = static_cast<const BlockQ8_K*>(vx);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    alignas(16) uint8_t sm[16];
    k4_unpack(w[i].scales, sm);
    // The order quants_avx512.cpp keeps.
    mins =
        std::fma(h2f(w[i].dmin) * x[i].d, static_cast<float>(k4_min_dot(x[i].bsums, sm + 8)), mins);
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kFive) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qh));
    __m256i sumi = _mm256_setzero_si256();
    const int8_t* y = x[i].qs;
    for (int j = 0; j < 4; ++j, y += 64) {
      __m256i q0, q1;
      k45_unpack_group<kFive>(w[i].qs, qh, j, &q0, &q1);
      const __m256i p0 =
          _mm256_maddubs_epi16(q0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y)));
      const __m256i p1 =
          _mm256_maddubs_epi16(q1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + 32)));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, _mm256_set1_epi16(sm[2 * j])));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, _mm256_set1_epi16(sm[2 * j + 1])));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * x[i].d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(acc) - mins;
}

float dot_q6_k(int64_t n, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ6_K*>(vw);
  const auto* x = static_cast<const BlockQ8_K*>(vx);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* sc = w[i].scales;
    // The -32 offset folded in through the block sums: sum sc_j * 32 * bsum_j.
    const __m256i sc16 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].bsums));
    const int offset = 32 * hsum_i32(_mm256_madd_epi16(sc16, bs));
    __m256i sumi = _mm256_setzero_si256();
    const int8_t* y = x[i].qs;
    for (int h = 0; h < 2; ++h) {
      __m256i q[4];
      q6k_unpack_half(w[i], h, q);
      for (int k = 0; k < 4; ++k, y += 32) {
        const __m256i p =
            _mm256_maddubs_epi16(q[k], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y)));
        const int s = 8 * h + 2 * k;
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, pair_scales(sc[s], sc[s + 1])));
      }
    }
    const float d = h2f(w[i].d) * x[i].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    acc = _mm256_add_ps(acc, _mm256_setr_ps(-d * static_cast<float>(offset), 0, 0, 0, 0, 0, 0, 0));
  }
  return hsum(acc);
}

// ------------------------------------------------------------------ quantize

// roundf (half away from zero) of 8 floats, exactly: trunc, then step away from zero when
// the dropped fraction (exact in fp32) is >= 0.5.
inline __m256i round_away(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.f));
  const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.f), _mm256_sub_ps(v, t));
  const __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                    _mm256_or_ps(sign, _mm256_set1_ps(1.f)));
  return _mm256_cvtps_epi32(_mm256_add_ps(t, step));
}

// 32 int32 (4 vectors) -> 32 int8 in order.
inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
  const __m256i r = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline float amax32(const float* x) {
  const __m256 abs = _mm256_set1_ps(-0.f);
  __m256 m = _mm256_andnot_ps(abs, _mm256_loadu_ps(x));
  for (int k = 1; k < 4; ++k)
    m = _mm256_max_ps(m, _mm256_andnot_ps(abs, _mm256_loadu_ps(x + 8 * k)));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <bool kWithSum, typename Block>
void quantize_q8(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<Block*>(dst);
  for (int64_t i = 0; i < n / 32; ++i, x += 32) {
    const float amax = amax32(x);
    const float d = amax / 127;
    __m256i q[4];
    if constexpr (kWithSum) {
      // Q8_1 (activations only) as ggml's x86 quantize_row_q8_1: x * (127 / amax), half to even.
      const __m256 id = _mm256_set1_ps(amax != 0.f ? 127.f / amax : 0.0f);
      for (int k = 0; k < 4; ++k)
        q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id));
    } else {
      const __m256 id = _mm256_set1_ps(d != 0.f ? 1.0f / d : 0.0f);
      for (int k = 0; k < 4; ++k) q[k] = round_away(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), pack32(q[0], q[1], q[2], q[3]));
    y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    if constexpr (kWithSum) {
      const int sum =
          hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
      y[i].s = _cvtss_sh(static_cast<float>(sum) * d, _MM_FROUND_TO_NEAREST_INT);
    }
  }
}

void quantize_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    float amax = 0.f;
    for (int k = 0; k < QK_K; k += 32) amax = std::max(amax, amax32(x + k));
    if (amax == 0.f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    float max = 0.f;  // first element of largest magnitude, as the reference picks it
    for (int j = 0; j < QK_K; ++j) {
      if (std::fabs(x[j]) == amax) {
        max = x[j];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 vs = _mm256_set1_ps(iscale);
    const __m256i lim = _mm256_set1_epi32(127);
    for (int k = 0; k < QK_K; k += 32) {
      __m256i q[4];
      for (int j = 0; j < 4; ++j) {
        // cvtps rounds half to even (default MXCSR), like the reference's nearest_int.
        q[j] = _mm256_min_epi32(
            _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * j), vs)), lim);
      }
      const __m256i packed = pack32(q[0], q[1], q[2], q[3]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + k), packed);
      // Two block sums of 16: widen to i16 and add pairs.
      const __m256i w16a = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(packed));
      const __m256i w16b = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(packed, 1));
      y[i].bsums[k / 16] =
          static_cast<int16_t>(hsum_i32(_mm256_madd_epi16(w16a, _mm256_set1_epi16(1))));
      y[i].bsums[k / 16 + 1] =
          static_cast<int16_t>(hsum_i32(_mm256_madd_epi16(w16b, _mm256_set1_epi16(1))));
    }
    y[i].d = 1 / iscale;
  }
}

void quantize_f16(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

// ------------------------------------------------------------------ dequantize
// Must equal the reference bit for bit: q * d rounded, then + m rounded, so no FMA
// contraction here.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

void dequantize_f16(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16x8(x + i));
  for (; i < n; ++i) y[i] = h2f(x[i]);
}

inline void store_i8x32_scaled(const __m256i q, __m256 d, float* y) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  const __m256 f[4] = {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)),
                       _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))),
                       _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)),
                       _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))};
  for (int k = 0; k < 4; ++k) _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(f[k], d));
}

void dequantize_q8_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / 32; ++i, y += 32) {
    store_i8x32_scaled(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs)),
                       _mm256_set1_ps(h2f(x[i].d)), y);
  }
}

void dequantize_q4_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / 32; ++i, y += 32) {
    store_i8x32_scaled(_mm256_sub_epi8(unpack_nibbles(x[i].qs), _mm256_set1_epi8(8)),
                       _mm256_set1_ps(h2f(x[i].d)), y);
  }
}

void dequantize_q4_1(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_1*>(src);
  for (int64_t i = 0; i < n / 32; ++i, y += 32) {
    const __m256i q = unpack_nibbles(x[i].qs);
    const __m256 d = _mm256_set1_ps(h2f(x[i].d)), m = _mm256_set1_ps(h2f(x[i].m));
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; ++k) {
      const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
      _mm256_storeu_ps(y + 8 * k, _mm256_add_ps(_mm256_mul_ps(f, d), m));
    }
  }
}

#pragma GCC pop_options

inline int slot(DType t) {
  return static_cast<int>(t);
}

}  // namespace

void fill_avx2_kernels(KernelTable& t) {
  t.vec_dot[slot(DType::F32)] = dot_f32;
  t.vec_dot[slot(DType::F16)] = dot_half<false>;
  t.vec_dot[slot(DType::BF16)] = dot_half<true>;
  t.vec_dot[slot(DType::Q4_0)] = dot_q4_0;
  t.vec_dot[slot(DType::Q4_1)] = dot_q4_1;
  t.vec_dot[slot(DType::Q5_0)] = dot_q5_0;
  t.vec_dot[slot(DType::Q5_1)] = dot_q5_1;
  t.vec_dot[slot(DType::Q8_0)] = dot_q8_0;
  t.vec_dot[slot(DType::Q4_K)] = dot_q45_k<false, BlockQ4_K>;
  t.vec_dot[slot(DType::Q5_K)] = dot_q45_k<true, BlockQ5_K>;
  t.vec_dot[slot(DType::Q6_K)] = dot_q6_k;

  t.quantize[slot(DType::Q8_0)] = quantize_q8<false, BlockQ8_0>;
  t.quantize[slot(DType::Q8_1)] = quantize_q8<true, BlockQ8_1>;
  t.quantize[slot(DType::Q8_K)] = quantize_q8_k;
  t.quantize[slot(DType::F16)] = quantize_f16;

  t.dequantize[slot(DType::F16)] = dequantize_f16;
  t.dequantize[slot(DType::Q8_0)] = dequantize_q8_0;
  t.dequantize[slot(DType::Q4_0)] = dequantize_q4_0;
  t.dequantize[slot(DType::Q4_1)] = dequantize_q4_1;
}

}  // namespace tessera::cpu
