// AVX-512 VNNI panel GEMM: up to 8 weight rows x one panel of 16 tokens (PanelBlockQ8).
// 512-bit lane c is token c; each of a weight block's eight 4-byte groups is broadcast and
// met by the panel vector of that group, so one vpdpbusd does 16 tokens x 4 elements. A
// tile's weight rows are unpacked once and then meet every panel of the call (which
// cpu_matmul.cpp sizes to stay in L2). Compiled with the AVX-512 flags.
//
// Per-output float order, the same as the row kernels' (quants_avx512.cpp, quants_avx2.cpp,
// and for Q4_0 quants_ref.cpp), so a token's result does not depend on its batch:
//  Q4_0: per block i, the exact i32 sum of (q - 8) * x over the 32 elements;
//        acc = fma(d_w * d_x, float(sum), acc) chained over blocks from 0; result = acc.
//  Q4_1: per block, 8 float lanes acc_j = fma(d_w * d_x, float(i32 sum over elements
//        4j..4j+3), acc_j); mins = fma(m_w, s_x, mins) chained over blocks; result =
//        hsum8(acc) + mins, hsum8 = (lo128 + hi128), + movehl, + movehdup, i.e.
//        ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
//  Q8_0: as Q4_1 without the min term: result = hsum8(acc).
#include <immintrin.h>

// GCC 12's 512-bit conversion and shift intrinsics start from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports at every inlined use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backend/cpu/quants_impl.h"
#include "backend/cpu/simd_x86.h"
#include "core/error.h"

namespace tessera::cpu {
namespace {

// Stores token c < nc of v to y[c * y_stride].
inline void store_tokens(__m512 v, int nc, float* y, int64_t y_stride) {
  alignas(64) float t[kPanel];
  _mm512_store_ps(t, v);
  for (int c = 0; c < nc; ++c) y[c * y_stride] = t[c];
}

// A tile's weight rows unpacked once for all the panels it meets: per block i, the R rows'
// 32 codes as bytes (q + (i * R + r) * 32; the group broadcasts read them as 4-byte loads,
// a load-port broadcast with no shuffle) and their fp16 fields widened (d, and m for Q4_1,
// at [i * R + r]). Per thread, grown on demand.
struct Unpacked {
  std::vector<uint8_t> q;
  std::vector<float> d, m;
  std::vector<int32_t> corr;  // Q8_0: -128 * (sum of group g's codes) at [(i * R + r) * 8 + g]
};

template <int R, typename W>
Unpacked& unpack_tile(const uint8_t* vw, size_t w_stride, int64_t nb) {
  constexpr bool kQ8 = std::is_same_v<W, BlockQ8_0>;
  thread_local Unpacked u;
  if (u.q.size() < static_cast<size_t>(nb * R * 32)) {
    u.q.resize(nb * R * 32);
    u.d.resize(nb * R);
    u.m.resize(nb * R);
    u.corr.resize(nb * R * 8);
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const W* w = reinterpret_cast<const W*>(vw + r * w_stride);
    for (int64_t i = 0; i < nb; ++i) {
      auto* dst = reinterpret_cast<__m256i*>(&u.q[(i * R + r) * 32]);
      if constexpr (kQ8) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs));
        _mm256_storeu_si256(dst, q);
        // Group sums of the signed codes (exact), times -128: see panel_q8_0.
        const __m256i sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(&u.corr[(i * R + r) * 8]),
                            _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sums, 7)));
      } else {
        _mm256_storeu_si256(dst, unpack_nibbles(w[i].qs));
      }
      u.d[i * R + r] = h2f(w[i].d);
      if constexpr (std::is_same_v<W, BlockQ4_1>) u.m[i * R + r] = h2f(w[i].m);
    }
  }
  return u;
}

// The same for a tile of row-interleaved weights (Q4_0_R8 / Q8_0_R8, always 8 rows): per
// block i the 8 rows' codes stay in the group block's vector order (q + i * 256: vector v
// at 64v, lane j = row j / 2, group 2v + j % 2; corr at i * 64 in the same lane order), so
// the unpacking is a nibble split (Q4_0) or a sign flip (Q8_0) with no transposition; the
// kernels address a (row, group) through q_off below.
template <typename W>
Unpacked& unpack_tile_r8(const uint8_t* vw, int64_t nb) {
  thread_local Unpacked u;
  if (u.q.size() < static_cast<size_t>(nb * 8 * 32)) {
    u.q.resize(nb * 8 * 32);
    u.d.resize(nb * 8);
    u.m.resize(nb * 8);
    u.corr.resize(nb * 8 * 8);
  }
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t* q = &u.q[i * 256];
    const uint16_t* d;
    if constexpr (std::is_same_v<W, BlockQ8_0>) {
      const BlockQ8_0R8& g = reinterpret_cast<const BlockQ8_0R8*>(vw)[i];
      d = g.d;
      for (int v = 0; v < 4; ++v) {
        const __m512i s = _mm512_xor_si512(_mm512_loadu_si512(g.qs + 64 * v), flip);
        _mm512_storeu_si512(q + 64 * v, s);
        const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), s);
        _mm512_storeu_si512(&u.corr[i * 64 + 16 * v],
                            _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, 7)));
      }
    } else {
      const BlockQ4_0R8& g = reinterpret_cast<const BlockQ4_0R8*>(vw)[i];
      d = g.d;
      for (int k = 0; k < 2; ++k) {
        const __m512i c = _mm512_loadu_si512(g.qs + 64 * k);
        _mm512_storeu_si512(q + 128 * k, _mm512_and_si512(c, m4));
        _mm512_storeu_si512(q + 128 * k + 64, _mm512_and_si512(_mm512_srli_epi16(c, 4), m4));
      }
    }
    _mm256_storeu_ps(&u.d[i * 8],
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d))));
  }
  return u;
}

// Byte offset of (row r, 4-byte group g) in an unpacked block: plain rows of 32 bytes, or
// the R8 vector order. Linear in r, so rows r0 + r of a tile start at q_off(r0, 0).
template <bool kR8>
constexpr int q_off(int r, int g) {
  return kR8 ? 64 * (g >> 1) + 8 * r + 4 * (g & 1) : 32 * r + 4 * g;
}

inline __m512i group(const uint8_t* q, int off) {
  return _mm512_set1_epi32(static_cast<int>(load_u32(q + off)));
}

template <int R, bool kR8>
void panel_q4_0(int64_t nb, const Unpacked& u, const PanelBlockQ8* p, int nc, float* y,
                int64_t y_stride) {
  __m512 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const uint8_t* q = u.q.data();
  const float* d = u.d.data();
  for (int64_t i = 0; i < nb; ++i, q += R * 32, d += R) {
    const PanelBlockQ8& b = p[i];
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
      for (int g = 0; g < 8; ++g) s = _mm512_dpbusd_epi32(s, group(q, q_off<kR8>(r, g)), a[g]);
      const __m512 sc = _mm512_mul_ps(_mm512_set1_ps(d[r]), dx);
      acc[r] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) store_tokens(acc[r], nc, y + r, y_stride);
}

// The 8 float lanes of one output (lane j: the groups of elements 4j..4j+3) summed as the
// single-row dot does, token by token: ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
inline __m512 hsum8(const __m512 (&a)[8]) {
  const __m512 u0 = _mm512_add_ps(_mm512_add_ps(a[0], a[4]), _mm512_add_ps(a[2], a[6]));
  const __m512 u1 = _mm512_add_ps(_mm512_add_ps(a[1], a[5]), _mm512_add_ps(a[3], a[7]));
  return _mm512_add_ps(u0, u1);
}

// Rows r0 .. r0 + K - 1 of an R-row unpacked tile.
template <int K, int R>
void panel_q4_1(int64_t nb, const Unpacked& u, int r0, const PanelBlockQ8* p, int nc, float* y,
                int64_t y_stride) {
  __m512 acc[K][8], mins[K];
#pragma GCC unroll 8
  for (int r = 0; r < K; ++r) {
    mins[r] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  const uint8_t* q = u.q.data() + r0 * 32;
  const float* d = u.d.data() + r0;
  const float* m = u.m.data() + r0;
  for (int64_t i = 0; i < nb; ++i, q += R * 32, d += R, m += R) {
    const PanelBlockQ8& b = p[i];
    const __m512 dx = _mm512_load_ps(b.d);
    const __m512 sx = _mm512_load_ps(b.s);
#pragma GCC unroll 8
    for (int r = 0; r < K; ++r) {
      const __m512 sc = _mm512_mul_ps(_mm512_set1_ps(d[r]), dx);
      mins[r] = _mm512_fmadd_ps(_mm512_set1_ps(m[r]), sx, mins[r]);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), group(q + 32 * r, 4 * j),
                                              _mm512_load_si512(b.qs[j]));
        acc[r][j] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc[r][j]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < K; ++r) {
    store_tokens(_mm512_add_ps(hsum8(acc[r]), mins[r]), nc, y + r, y_stride);
  }
}

// Q8_0: the codes are signed on both sides, so the panel's activations go through the
// unsigned operand as x + 128 (xor 0x80) and each group's lane starts at -128 * (the
// weight group's sum): the lane is exactly sum(w * x) over the group. Then as Q4_1 without
// the min term: 8 float lanes per output, hsum8 at the end. Rows r0 .. r0 + K - 1.
template <int K, int R, bool kR8>
void panel_q8_0(int64_t nb, const Unpacked& u, int r0, const PanelBlockQ8* p, int nc, float* y,
                int64_t y_stride) {
  __m512 acc[K][8];
#pragma GCC unroll 8
  for (int r = 0; r < K; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) acc[r][j] = _mm512_setzero_ps();
  const uint8_t* q = u.q.data() + q_off<kR8>(r0, 0);
  const float* d = u.d.data() + r0;
  const int32_t* corr = u.corr.data() + q_off<kR8>(r0, 0) / 4;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t i = 0; i < nb; ++i, q += R * 32, d += R, corr += R * 8) {
    const PanelBlockQ8& b = p[i];
    const __m512 dx = _mm512_load_ps(b.d);
    __m512i a[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) a[j] = _mm512_xor_si512(_mm512_load_si512(b.qs[j]), flip);
#pragma GCC unroll 8
    for (int r = 0; r < K; ++r) {
      const __m512 sc = _mm512_mul_ps(_mm512_set1_ps(d[r]), dx);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m512i s = _mm512_dpbusd_epi32(_mm512_set1_epi32(corr[q_off<kR8>(r, j) / 4]), a[j],
                                              group(q, q_off<kR8>(r, j)));
        acc[r][j] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc[r][j]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < K; ++r) store_tokens(hsum8(acc[r]), nc, y + r, y_stride);
}

// The panel kernel for K rows (starting at r0) of an R-row tile of weight type W. Q4_1
// and Q8_0 keep 8 float accumulators per output, so they take two rows at a time: 16
// accumulators (+ 2 min vectors for Q4_1) fit the 32 registers.
template <typename W, int K, int R, bool kR8>
void panel_rows(int64_t nb, const Unpacked& u, int r0, const PanelBlockQ8* p, int nc, float* y,
                int64_t y_stride) {
  if constexpr (std::is_same_v<W, BlockQ4_1>) {
    panel_q4_1<K, R>(nb, u, r0, p, nc, y, y_stride);
  } else {
    panel_q8_0<K, R, kR8>(nb, u, r0, p, nc, y, y_stride);
  }
}

// y[c * y_stride + r] for the R weight rows at w (kR8: the group of 8 rows of the
// repacked type of W) and the n_tokens tokens of the panels.
template <typename W, int R, bool kR8 = false>
void tile(int64_t n, const void* w, size_t w_stride, const void* panels, size_t panel_stride,
          int n_tokens, float* y, int64_t y_stride) {
  const int64_t nb = n / 32;
  const Unpacked& u = [&]() -> const Unpacked& {
    if constexpr (kR8)
      return unpack_tile_r8<W>(static_cast<const uint8_t*>(w), nb);
    else
      return unpack_tile<R, W>(static_cast<const uint8_t*>(w), w_stride, nb);
  }();
  for (int c0 = 0; c0 < n_tokens; c0 += kPanel) {
    const auto* p = reinterpret_cast<const PanelBlockQ8*>(static_cast<const uint8_t*>(panels) +
                                                          (c0 / kPanel) * panel_stride);
    const int nc = std::min(kPanel, n_tokens - c0);
    float* yc = y + c0 * y_stride;
    if constexpr (std::is_same_v<W, BlockQ4_0>) {
      panel_q4_0<R, kR8>(nb, u, p, nc, yc, y_stride);  // one accumulator per output: all R rows
    } else {
      int r = 0;
      for (; r + 2 <= R; r += 2) panel_rows<W, 2, R, kR8>(nb, u, r, p, nc, yc + r, y_stride);
      if (r < R) panel_rows<W, 1, R, kR8>(nb, u, r, p, nc, yc + r, y_stride);
    }
  }
}

// PanelGemmFn for weight type W: the tile of nr (<= kPanelRows) rows.
template <typename W>
void gemm(int64_t n, const void* w, size_t w_stride, int nr, const void* panels,
          size_t panel_stride, int n_tokens, float* y, int64_t y_stride) {
  using TileFn = void (*)(int64_t, const void*, size_t, const void*, size_t, int, float*, int64_t);
  static constexpr TileFn kTiles[kPanelRows] = {tile<W, 1>, tile<W, 2>, tile<W, 3>, tile<W, 4>,
                                                tile<W, 5>, tile<W, 6>, tile<W, 7>, tile<W, 8>};
  kTiles[nr - 1](n, w, w_stride, panels, panel_stride, n_tokens, y, y_stride);
}

// PanelGemmFn of the repacked type of W: w is one group, nr == kPanelRows.
template <typename W>
void gemm_r8(int64_t n, const void* w, size_t w_stride, int nr, const void* panels,
             size_t panel_stride, int n_tokens, float* y, int64_t y_stride) {
  if (nr != kPanelRows) throw Error("panel GEMM: a repacked tile must have 8 rows");
  tile<W, kPanelRows, true>(n, w, w_stride, panels, panel_stride, n_tokens, y, y_stride);
}

}  // namespace

void fill_avx512_panel_kernels(KernelTable& t) {
  t.panel_gemm_r8[static_cast<int>(DType::Q4_0)] = gemm_r8<BlockQ4_0>;
  t.panel_gemm_r8[static_cast<int>(DType::Q8_0)] = gemm_r8<BlockQ8_0>;
  t.panel_gemm[static_cast<int>(DType::Q4_0)] = gemm<BlockQ4_0>;
  t.panel_gemm[static_cast<int>(DType::Q4_1)] = gemm<BlockQ4_1>;
  t.panel_gemm[static_cast<int>(DType::Q8_0)] = gemm<BlockQ8_0>;
}

}  // namespace tessera::cpu
