// Small x86 helpers shared by the SIMD kernel files (quants_avx2.cpp, quants_avx512.cpp,
// gemm_panel_avx512.cpp, gemm_tile_avx2.cpp, activations_avx2.cpp,
// attention_tiled_avx2.cpp). Only those files include it; each is compiled with at least
// -mavx2 -mfma -mf16c. The helpers have internal linkage on
// purpose: every kernel file gets its own copy built for its own ISA flags, so the linker can never
// hand an AVX-512 build of a helper to AVX2 code.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"

namespace tessera::cpu {
namespace {  // NOLINT(google-build-namespaces): per-ISA copies, see above

// ggml's exp polynomial (expf_poly in quants_impl.h) on 8 lanes, its fused multiply-adds as
// written. *n gets each lane's power of two, round(x log2 e); 2^n is built in the exponent
// field, so the result equals expf_poly only where |n| <= 126: callers check *n and take
// expf_poly for the other lanes.
inline __m256 expf_poly8(__m256 x, __m256* n_out) {
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
  const __m256 n = _mm256_sub_ps(z, r);
  *n_out = n;
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
  // The integer n sits in the low bits of z; shifted into the exponent field of 1.0f.
  const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
  return _mm256_mul_ps(
      j, _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f)))));
}

// Lanes with |v| > 126 (all ones), for expf_poly8's range check.
inline __m256 beyond_126(__m256 v) {
  return _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v), _mm256_set1_ps(126.0f),
                       _CMP_GT_OQ);
}

inline float h2f(uint16_t h) {
  return _cvtsh_ss(h);
}

// Unaligned little-endian loads from block fields.
inline uint16_t load_u16(const void* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

inline uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The sum of the 8 lanes in the order every 8-lane dot kernel (single row and tiled) uses:
// s_i = a_i + a_{i+4}, then (s0 + s2) + (s1 + s3). Results of different kernels agree bit
// for bit only because they all reduce here.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The sum of v's 8 int32 lanes.
inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// Lane k of the result = the sum of v_k's 8 int32 lanes, exactly.
inline __m128i sum4_i32(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// Bit j of the 32-bit little-endian mask -> byte j = 0xFF if set, else 0.
inline __m256i bits_to_bytes(const uint8_t* qh) {
  uint32_t m;
  std::memcpy(&m, qh, 4);
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2,
                                        2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(m)), shuf);
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

// Q4_K/Q5_K: the 8 six-bit scales (bytes 0..7) and mins (bytes 8..15) of a super-block.
inline void k4_unpack(const uint8_t* s, uint8_t out[16]) {
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    quant::k4_scale_min(j, s, &sc, &m);
    out[j] = static_cast<uint8_t>(sc);
    out[8 + j] = static_cast<uint8_t>(m);
  }
}

// sum_j bsums[j] * m[j / 2] for the 8 sub-block mins m.
inline int k4_min_dot(const int16_t* bsums, const uint8_t* mins) {
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums));
  const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mins));
  // Each min repeated for its two 16-element halves.
  const __m128i m16 = _mm_cvtepu8_epi16(m8);
  const __m256i mm = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
  return hsum_i32(_mm256_madd_epi16(b, mm));
}

// Scale vector for a 32-element group covering 16-element sub-blocks a and a+1: i16 lanes
// 0..7 (elements 0..15 after maddubs) get sc[a], lanes 8..15 get sc[a+1].
inline __m256i pair_scales(int a, int b) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(b)),
                          _mm_set1_epi16(static_cast<int16_t>(a)));
}

// Q4_K / Q5_K: group j (elements 64j .. 64j + 63) of a super-block's quants as two vectors
// of 32 unsigned values, *q0 (elements 64j .. 64j + 31) and *q1 (the next 32); Q5_K's fifth
// bits come from qh, the block's 32 qh bytes (loaded once per super-block).
template <bool kFive>
inline void k45_unpack_group(const uint8_t* qs, __m256i qh, int j, __m256i* q0, __m256i* q1) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * j));
  *q0 = _mm256_and_si256(raw, m4);
  *q1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
  if constexpr (kFive) {
    const __m256i b0 = _mm256_set1_epi8(static_cast<char>(1 << (2 * j)));
    const __m256i b1 = _mm256_set1_epi8(static_cast<char>(1 << (2 * j + 1)));
    const __m256i h16 = _mm256_set1_epi8(0x10);
    *q0 = _mm256_or_si256(*q0,
                          _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b0), b0), h16));
    *q1 = _mm256_or_si256(*q1,
                          _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b1), b1), h16));
  }
}

// Q6_K: half h (elements 128h .. 128h + 127) of a super-block's quants as 4 vectors of 32
// unsigned 6-bit values (q + 32), elements 128h + 32k + e in q[k] byte e.
inline void q6k_unpack_half(const quant::BlockQ6_K& b, int h, __m256i q[4]) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
  const uint8_t* ql = b.ql + 64 * h;
  const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
  const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
  const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
  q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
}

// 16 bytes of packed nibbles -> 32 bytes: low nibbles (elements 0..15) in the low lane,
// high nibbles (elements 16..31) in the high lane.
inline __m256i unpack_nibbles(const uint8_t* p) {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  // Both lanes filled by the load unit; only the high lane's words are shifted.
  const __m256i both =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_and_si256(_mm256_mask_srli_epi16(both, 0xFF00, both, 4), _mm256_set1_epi8(0x0F));
#else
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
#endif
}

// Q5_0: a block's values q - 16 as s8 (the nibble with 0xF0 or-ed in where the fifth bit is
// clear).
inline __m256i q5_0_values(const quant::BlockQ5_0& b) {
  const __m256i hi = _mm256_andnot_si256(bits_to_bytes(b.qh), _mm256_set1_epi8(char(0xF0)));
  return _mm256_or_si256(unpack_nibbles(b.qs), hi);
}

}  // namespace
}  // namespace tessera::cpu
