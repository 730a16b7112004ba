// AVX-512 VNNI GEMV over row-interleaved weights (Q4_0_R8, Q8_0_R8; layout in quants.h):
// single-stream decode, 1..7 tokens. Compiled with the AVX-512 flags; reached only after the
// CPU check in quants.cpp.
//
// One group block (8 rows x 32 elements) is four 512-bit vectors v whose i32 lane j is
// (row j / 2, elements 4 * (2v + j % 2) .. + 3): Q8_0 loads them as they are (codes + 128),
// Q4_0 splits two 64-byte loads into nibbles. Each meets the activation's bytes 8v .. 8v + 7
// broadcast to every 64-bit lane (one broadcast load) in one vpdpbusd. A thread's groups
// are one contiguous stream of weight bytes, and a token's prepared activations (ActR8*,
// about the Q8_0 row's size) stay in L1 beside it: the loop runs at memory speed.
//
// Float order per (row, token), the plain kernels' (quants_avx512.cpp):
//  Q4_0: the exact i32 block dot (lanes 2r + 2r + 1, started at -4 * sum(x) each for the
//        q - 8 offset), acc = fma(dw * dx, float(dot), acc) block after block; 8 rows in the
//        8 lanes of one ymm.
//  Q8_0: lane (row, group l) holds the exact i32 sum of elements 4l .. 4l + 3 (started at
//        -128 * (the group's x sum) for the + 128 offset); acc = fma(dw * dx, float(sum),
//        acc) per lane, and at the end per row ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)),
//        hsum's tree, done on the 8 rows at once: a_l of the 8 rows are the lanes l % 2,
//        2 + l % 2, ... of vector l / 2's accumulator.
#include <immintrin.h>

// GCC 12's 512-bit conversion and shift intrinsics start from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports at every inlined use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>

#include "backend/cpu/quants_impl.h"
#include "backend/cpu/simd_x86.h"

namespace tessera::cpu {
namespace {

inline __m512i load512(const void* p) {
  return _mm512_loadu_si512(p);
}

// 8 bytes at p in every 64-bit lane.
inline __m512i bcast8(const void* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return _mm512_set1_epi64(v);
}

template <bool kQ4>
void prepare(int64_t n, const void* vx, void* vdst) {
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    // Lane k: sum of elements 4k .. 4k + 3.
    const __m256i sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), xv);
    if constexpr (kQ4) {
      ActR8Q4_0& a = static_cast<ActR8Q4_0*>(vdst)[i];
      std::memcpy(a.x, x[i].qs, 32);
      __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
      a.start = -4 * _mm_cvtsi128_si32(s4);
      a.d = h2f(x[i].d);
    } else {
      ActR8Q8_0& a = static_cast<ActR8Q8_0*>(vdst)[i];
      std::memcpy(a.x, x[i].qs, 32);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.start),
                          _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sums, 7)));
      a.d = h2f(x[i].d);
      a.pad = 0;
    }
  }
}

// C tokens (xs[c]: their prepared blocks) against the group g of nb blocks; y[c * y_stride + r].
template <int C>
void group_q4_0(int64_t nb, const BlockQ4_0R8* g, const ActR8Q4_0* const* xs, float* y,
                int64_t y_stride) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m256 acc[C];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const __m512i c0 = load512(g[i].qs), c1 = load512(g[i].qs + 64);
    const __m512i q0 = _mm512_and_si512(c0, m4);
    const __m512i q1 = _mm512_and_si512(_mm512_srli_epi16(c0, 4), m4);
    const __m512i q2 = _mm512_and_si512(c1, m4);
    const __m512i q3 = _mm512_and_si512(_mm512_srli_epi16(c1, 4), m4);
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g[i].d)));
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      const ActR8Q4_0& a = xs[c][i];
      __m512i s = _mm512_set1_epi32(a.start);
      s = _mm512_dpbusd_epi32(s, q0, bcast8(a.x));
      s = _mm512_dpbusd_epi32(s, q1, bcast8(a.x + 8));
      s = _mm512_dpbusd_epi32(s, q2, bcast8(a.x + 16));
      s = _mm512_dpbusd_epi32(s, q3, bcast8(a.x + 24));
      // Row r's two lanes added in the low half of 64-bit lane r, then narrowed: exact.
      const __m256i s8 = _mm512_cvtepi64_epi32(_mm512_add_epi32(s, _mm512_srli_epi64(s, 32)));
      acc[c] =
          _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a.d)), _mm256_cvtepi32_ps(s8), acc[c]);
    }
  }
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) _mm256_storeu_ps(y + c * y_stride, acc[c]);
}

template <int C>
void group_q8_0(int64_t nb, const BlockQ8_0R8* g, const ActR8Q8_0* const* xs, float* y,
                int64_t y_stride) {
  __m512 acc[C][4];
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[c][v] = _mm512_setzero_ps();
  // Lane j takes row j / 2's scale.
  const __m256i dup = _mm256_setr_epi16(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  for (int64_t i = 0; i < nb; ++i) {
    __m512i w[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) w[v] = load512(g[i].qs + 64 * v);
    const __m512 dw = _mm512_cvtph_ps(_mm256_permutexvar_epi16(
        dup, _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g[i].d)))));
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const ActR8Q8_0& a = xs[c][i];
      const __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(a.d));
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        const __m512i s = _mm512_dpbusd_epi32(bcast8(a.start + 2 * v), w[v], bcast8(a.x + 8 * v));
        acc[c][v] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc[c][v]);
      }
    }
  }
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0);
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    __m256 a[8];  // a[l]: group l's lane of the 8 rows
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      a[2 * v] = _mm512_castps512_ps256(_mm512_permutexvar_ps(even, acc[c][v]));
      a[2 * v + 1] = _mm512_castps512_ps256(_mm512_permutexvar_ps(odd, acc[c][v]));
    }
    const __m256 u0 = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
    const __m256 u1 = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
    _mm256_storeu_ps(y + c * y_stride, _mm256_add_ps(u0, u1));
  }
}

// GemvR8Fn: each group against the tokens, kMaxC at a time (the accumulators of kMaxC
// tokens fill the registers).
template <typename G, typename A, int kMaxC>
void gemv(int64_t n, const void* w, int64_t n_groups, const void* xp, size_t xp_stride, int nc,
          float* y, int64_t y_stride) {
  using Fn = void (*)(int64_t, const G*, const A* const*, float*, int64_t);
  static constexpr auto kFns = [] {
    std::array<Fn, kMaxC> f{};
    if constexpr (std::is_same_v<G, BlockQ4_0R8>) {
      f = {group_q4_0<1>, group_q4_0<2>, group_q4_0<3>, group_q4_0<4>,
           group_q4_0<5>, group_q4_0<6>, group_q4_0<7>, group_q4_0<8>};
    } else {
      f = {group_q8_0<1>, group_q8_0<2>, group_q8_0<3>, group_q8_0<4>};
    }
    return f;
  }();
  const int64_t nb = n / 32;
  const G* g = static_cast<const G*>(w);
  for (int64_t gi = 0; gi < n_groups; ++gi, g += nb) {
    for (int c0 = 0; c0 < nc; c0 += kMaxC) {
      const int m = std::min(kMaxC, nc - c0);
      const A* xs[kMaxC];
      for (int c = 0; c < m; ++c)
        xs[c] = reinterpret_cast<const A*>(static_cast<const uint8_t*>(xp) + (c0 + c) * xp_stride);
      float* yc = y + c0 * y_stride + 8 * gi;
      kFns[m - 1](nb, g, xs, yc, y_stride);
    }
  }
}

}  // namespace

void fill_avx512_gemv_r8_kernels(KernelTable& t) {
  const int q4 = static_cast<int>(DType::Q4_0), q8 = static_cast<int>(DType::Q8_0);
  t.gemv_r8_prepare[q4] = prepare<true>;
  t.gemv_r8_prepare[q8] = prepare<false>;
  t.gemv_r8[q4] = gemv<BlockQ4_0R8, ActR8Q4_0, 8>;
  t.gemv_r8[q8] = gemv<BlockQ8_0R8, ActR8Q8_0, 4>;
}

}  // namespace tessera::cpu
