// AVX-512 VNNI GEMV over row-interleaved weights (Q4_0_R8, Q8_0_R8; layout in quants.h):
// single-stream decode, 1..7 tokens. Compiled with the AVX-512 flags; reached only after the
// CPU check in quants.cpp.
//
// One group block (8 rows x 32 elements) is four 512-bit vectors v whose i32 lane j is
// (row j % 8, elements 4 * (2v + j / 8) .. + 3): Q8_0 loads them as they are (codes + 128),
// Q4_0 splits two 64-byte loads into nibbles. Each meets ActR8*::x[v], the activation block
// permuted once per call (gemv_r8_prepare), in one vpdpbusd. A thread's groups are one
// contiguous stream of weight bytes, which the hardware prefetchers follow.
//
// Float order per (row, token), the plain kernels' (quants_avx512.cpp):
//  Q4_0: the exact i32 block dot (lane j + lane j + 8, started at -8 * sum(x) for the
//        q - 8 offset), acc = fma(dw * dx, float(dot), acc) block after block; 8 rows in the
//        8 lanes of one ymm.
//  Q8_0: lane (row, group l) holds the exact i32 sum of elements 4l .. 4l + 3 (started at
//        -128 * (the group's x sum) for the + 128 offset); acc = fma(dw * dx, float(sum),
//        acc) per lane, and at the end per row ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)),
//        hsum's tree, done on the 8 rows at once: a_l of the 8 rows is the (l % 2) half of
//        vector l / 2's accumulator.
#include <immintrin.h>

// GCC 12's 512-bit conversion and shift intrinsics start from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports at every inlined use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <array>
#include <type_traits>

#include "backend/cpu/quants_impl.h"
#include "backend/cpu/simd_x86.h"

namespace tessera::cpu {
namespace {

// Lane j of vector v reads activation group 2v + j / 8.
inline __m512i perm_index(int v) {
  const int a = 2 * v, b = 2 * v + 1;
  return _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b);
}

inline __m512i load512(const void* p) {
  return _mm512_loadu_si512(p);
}

template <bool kQ4>
void prepare(int64_t n, const void* vx, void* vdst) {
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  const __m512i idx[4] = {perm_index(0), perm_index(1), perm_index(2), perm_index(3)};
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m512i xv =
        _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs)));
    __m512i xp[4];
    for (int v = 0; v < 4; ++v) xp[v] = _mm512_permutexvar_epi32(idx[v], xv);
    if constexpr (kQ4) {
      ActR8Q4_0& a = static_cast<ActR8Q4_0*>(vdst)[i];
      for (int v = 0; v < 4; ++v) _mm512_store_si512(a.x[v], xp[v]);
      const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1),
                                            _mm512_castsi512_si256(xv));
      __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
      const int32_t start = -8 * _mm_cvtsi128_si32(s4);
      _mm512_store_si512(a.start, _mm512_maskz_set1_epi32(0x00FF, start));
      a.d = h2f(x[i].d);
    } else {
      ActR8Q8_0& a = static_cast<ActR8Q8_0*>(vdst)[i];
      const __m512i off = _mm512_set1_epi8(static_cast<char>(0x80));
      for (int v = 0; v < 4; ++v) {
        _mm512_store_si512(a.x[v], xp[v]);
        _mm512_store_si512(a.start[v],
                           _mm512_sub_epi32(_mm512_setzero_si512(),
                                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, xp[v])));
      }
      a.d = h2f(x[i].d);
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
      __m512i s = _mm512_load_si512(a.start);
      s = _mm512_dpbusd_epi32(s, q0, _mm512_load_si512(a.x[0]));
      s = _mm512_dpbusd_epi32(s, q1, _mm512_load_si512(a.x[1]));
      s = _mm512_dpbusd_epi32(s, q2, _mm512_load_si512(a.x[2]));
      s = _mm512_dpbusd_epi32(s, q3, _mm512_load_si512(a.x[3]));
      const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
      acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a.d)), _mm256_cvtepi32_ps(s8), acc[c]);
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
  for (int64_t i = 0; i < nb; ++i) {
    __m512i w[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) w[v] = load512(g[i].qs + 64 * v);
    // Lane j: row j % 8's scale.
    const __m512 dw = _mm512_cvtph_ps(
        _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g[i].d))));
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const ActR8Q8_0& a = xs[c][i];
      const __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(a.d));
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        const __m512i s =
            _mm512_dpbusd_epi32(_mm512_load_si512(a.start[v]), w[v], _mm512_load_si512(a.x[v]));
        acc[c][v] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc[c][v]);
      }
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    __m256 a[8];  // a[l]: lane group l of the 8 rows
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      a[2 * v] = _mm512_castps512_ps256(acc[c][v]);
      a[2 * v + 1] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[c][v]), 1));
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
