// AVX-512 VNNI panel GEMM: up to 8 weight rows x one panel of 16 tokens (PanelBlockQ8).
// 512-bit lane c is token c; each of a weight block's eight 4-byte groups is broadcast and
// met by the panel vector of that group, so one vpdpbusd does 16 tokens x 4 elements and a
// weight block is unpacked once per panel. Compiled with the AVX-512 flags.
//
// Per-output float order, the same as the row kernels' (quants_avx512.cpp, quants_avx2.cpp,
// and for Q4_0 quants_ref.cpp), so a token's result does not depend on its batch:
//  Q4_0: per block i, the exact i32 sum of (q - 8) * x over the 32 elements;
//        acc = fma(d_w * d_x, float(sum), acc) chained over blocks from 0; result = acc.
//  Q4_1: per block, 8 float lanes acc_j = fma(d_w * d_x, float(i32 sum over elements
//        4j..4j+3), acc_j); mins = fma(m_w, s_x, mins) chained over blocks; result =
//        hsum8(acc) + mins, hsum8 = (lo128 + hi128), + movehl, + movehdup, i.e.
//        ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/quants_impl.h"

namespace tessera::cpu {
namespace {

inline uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline float h2f(uint16_t h) {
  return _cvtsh_ss(h);
}

// 16 bytes of packed nibbles -> 32 bytes: elements 0..15 (low nibbles), then 16..31.
inline __m256i unpack_nibbles(const uint8_t* p) {
  const __m256i both =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_and_si256(_mm256_mask_srli_epi16(both, 0xFF00, both, 4), _mm256_set1_epi8(0x0F));
}

// Stores token c < nc of v to y[c * y_stride].
inline void store_tokens(__m512 v, int nc, float* y, int64_t y_stride) {
  alignas(64) float t[kPanel];
  _mm512_store_ps(t, v);
  for (int c = 0; c < nc; ++c) y[c * y_stride] = t[c];
}

// The weight blocks' codes, unpacked to bytes in memory: the group broadcasts below read
// them as 4-byte loads (a load-port broadcast, no shuffle).
template <int R, typename W>
inline void unpack_rows(const W* const* w, int64_t i, uint8_t (*wq)[32]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(wq[r]), unpack_nibbles(w[r][i].qs));
  }
  // The compiler must not turn the stores and 4-byte reloads into register shuffles.
  asm volatile("" : : "r"(wq) : "memory");
}

template <int R>
void panel_q4_0(int64_t n, const void* vw, size_t w_stride, const PanelBlockQ8* p, int nc, float* y,
                int64_t y_stride) {
  const BlockQ4_0* w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    w[r] = reinterpret_cast<const BlockQ4_0*>(static_cast<const uint8_t*>(vw) + r * w_stride);
  }
  __m512 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  alignas(32) uint8_t wq[R][32];
  for (int64_t i = 0; i < n / 32; ++i) {
    const PanelBlockQ8& b = p[i];
    unpack_rows<R>(w, i, wq);
    __m512i a[8];
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) a[g] = _mm512_load_si512(b.qs[g]);
    // Weight q - 8 through the unsigned operand: start at -8 * sum(x).
    const __m512i start =
        _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(_mm512_load_si512(b.sum), 3));
    const __m512 dx = _mm512_load_ps(b.d);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512i s = start;
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g) {
        s = _mm512_dpbusd_epi32(s, _mm512_set1_epi32(static_cast<int>(load_u32(wq[r] + 4 * g))),
                                a[g]);
      }
      const __m512 sc = _mm512_mul_ps(_mm512_set1_ps(h2f(w[r][i].d)), dx);
      acc[r] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) store_tokens(acc[r], nc, y + r, y_stride);
}

template <int R>
void panel_q4_1(int64_t n, const void* vw, size_t w_stride, const PanelBlockQ8* p, int nc, float* y,
                int64_t y_stride) {
  const BlockQ4_1* w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    w[r] = reinterpret_cast<const BlockQ4_1*>(static_cast<const uint8_t*>(vw) + r * w_stride);
  }
  __m512 acc[R][8], mins[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    mins[r] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  alignas(32) uint8_t wq[R][32];
  for (int64_t i = 0; i < n / 32; ++i) {
    const PanelBlockQ8& b = p[i];
    unpack_rows<R>(w, i, wq);
    const __m512 dx = _mm512_load_ps(b.d);
    const __m512 sx = _mm512_load_ps(b.s);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 sc = _mm512_mul_ps(_mm512_set1_ps(h2f(w[r][i].d)), dx);
      mins[r] = _mm512_fmadd_ps(_mm512_set1_ps(h2f(w[r][i].m)), sx, mins[r]);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m512i s = _mm512_dpbusd_epi32(
            _mm512_setzero_si512(), _mm512_set1_epi32(static_cast<int>(load_u32(wq[r] + 4 * j))),
            _mm512_load_si512(b.qs[j]));
        acc[r][j] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc[r][j]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 u0 =
        _mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][4]), _mm512_add_ps(acc[r][2], acc[r][6]));
    const __m512 u1 =
        _mm512_add_ps(_mm512_add_ps(acc[r][1], acc[r][5]), _mm512_add_ps(acc[r][3], acc[r][7]));
    store_tokens(_mm512_add_ps(_mm512_add_ps(u0, u1), mins[r]), nc, y + r, y_stride);
  }
}

using TileFn = void (*)(int64_t, const void*, size_t, const PanelBlockQ8*, int, float*, int64_t);

void gemm_q4_0(int64_t n, const void* w, size_t w_stride, int nr, const void* panel, int nc,
               float* y, int64_t y_stride) {
  static constexpr TileFn kTiles[8] = {panel_q4_0<1>, panel_q4_0<2>, panel_q4_0<3>, panel_q4_0<4>,
                                       panel_q4_0<5>, panel_q4_0<6>, panel_q4_0<7>, panel_q4_0<8>};
  kTiles[nr - 1](n, w, w_stride, static_cast<const PanelBlockQ8*>(panel), nc, y, y_stride);
}

// Two rows at a time: 16 float accumulators + 2 min vectors fit the 32 registers.
void gemm_q4_1(int64_t n, const void* w, size_t w_stride, int nr, const void* panel, int nc,
               float* y, int64_t y_stride) {
  const auto* p = static_cast<const PanelBlockQ8*>(panel);
  const auto* wb = static_cast<const uint8_t*>(w);
  int r = 0;
  for (; r + 2 <= nr; r += 2) panel_q4_1<2>(n, wb + r * w_stride, w_stride, p, nc, y + r, y_stride);
  if (r < nr) panel_q4_1<1>(n, wb + r * w_stride, w_stride, p, nc, y + r, y_stride);
}

}  // namespace

void fill_avx512_panel_kernels(KernelTable& t) {
  t.panel_gemm[static_cast<int>(DType::Q4_0)] = gemm_q4_0;
  t.panel_gemm[static_cast<int>(DType::Q4_1)] = gemm_q4_1;
}

}  // namespace tessera::cpu
