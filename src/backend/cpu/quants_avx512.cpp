// AVX-512 (F/BW/VL) + VNNI kernels. Compiled with the AVX-512 flags (see CMakeLists.txt) and
// only reached through quants.cpp after the CPU check.
//
// Tiled dot products for the 32-element block types: a tile of up to 4 weight rows x 4
// activation rows, each weight block unpacked once and met by every activation block of
// the tile, 256-bit VNNI (u8 x s8 -> i32 in one instruction) and 16 accumulators held in
// the 32 vector registers.
//
// Summation order for Q4_1 and Q8_0 (shared with the AVX2 vec_dot kernels and
// gemm_panel_avx512.cpp, so every level and every tile shape gives the same bits for a
// (row, activation) pair): lane l (0..7) of a block's
// integer dot is the exact sum of elements 4l..4l+3; per lane, acc = fma(dw * dx,
// float(lane sum), acc) block after block; the 8 lanes are then reduced by `hsum` below;
// Q4_1 adds its min term, a scalar fma chain over blocks (fma(m, s, mins)), last.
//
// Q4_0 takes each block's exact integer dot whole: acc = fma(dw * dx, float(block sum), acc),
// a scalar chain over blocks per pair (gemm_tile_q4_0 below; the order of quants_ref.cpp,
// quants_avx2.cpp and the Q4_0 panel kernel).
//
// Signed weights go through VNNI's unsigned operand with an offset: Q4_0 uses the raw
// nibble q (weight q - 8) and Q8_0 uses w + 128 (w xor 0x80); the offset times the lane sum
// of the activation block is subtracted through the accumulator's start value, computed
// once per activation block.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/quants_impl.h"
#include "backend/cpu/simd_x86.h"

namespace tessera::cpu {
namespace {

inline __m256i load32(const int8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

enum class Kind { Q4_0, Q4_1, Q8_0 };

template <Kind K>
struct Traits;
template <>
struct Traits<Kind::Q4_0> {
  using W = BlockQ4_0;
  using X = BlockQ8_0;
};
template <>
struct Traits<Kind::Q4_1> {
  using W = BlockQ4_1;
  using X = BlockQ8_1;
};
template <>
struct Traits<Kind::Q8_0> {
  using W = BlockQ8_0;
  using X = BlockQ8_0;
};

// Weight codes as unsigned bytes for dpbusd.
template <Kind K>
inline __m256i weight_u8(const typename Traits<K>::W& b) {
  if constexpr (K == Kind::Q8_0) {
    return _mm256_xor_si256(load32(b.qs), _mm256_set1_epi8(static_cast<char>(0x80)));
  } else {
    return unpack_nibbles(b.qs);
  }
}

// Start value of a block's i32 accumulator: minus offset * (lane sums of y).
template <Kind K>
inline __m256i start_value(__m256i y) {
  if constexpr (K == Kind::Q4_1) {
    return _mm256_setzero_si256();
  } else {
    const __m256i off = _mm256_set1_epi8(K == Kind::Q8_0 ? static_cast<char>(0x80) : 8);
    return _mm256_sub_epi32(_mm256_setzero_si256(),
                            _mm256_dpbusd_epi32(_mm256_setzero_si256(), off, y));
  }
}

// The fp16 scale (and for Q4_1 the min / sum) of block i of up to 4 rows, as floats:
// Q4_1 / Q8_1: [d0, m0, d1, m1, d2, m2, d3, m3]; others: [d0, d1, d2, d3, 0...]. Built in
// general registers and converted with one instruction.
template <bool kPairs, int N, typename B>
inline __m256 block_scales(const B* const* rows, int64_t i) {
  uint64_t lo = 0, hi = 0;
  if constexpr (kPairs) {
    // d and the second fp16 field are the block's first 4 bytes.
    for (int k = 0; k < N; ++k) {
      const uint64_t v = load_u32(&rows[k][i]);
      if (k < 2)
        lo |= v << (32 * k);
      else
        hi |= v << (32 * (k - 2));
    }
  } else {
    for (int k = 0; k < N; ++k) lo |= uint64_t{load_u16(&rows[k][i])} << (16 * k);
  }
  return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo)));
}

template <Kind K, int R, int C>
void gemm_tile(int64_t n, const void* vw, size_t w_stride, const void* vx, size_t x_stride,
               float* y, int64_t y_stride) {
  using W = typename Traits<K>::W;
  using X = typename Traits<K>::X;
  constexpr bool kMin = K == Kind::Q4_1;
  const W* w[R];
  const X* x[C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    w[r] = reinterpret_cast<const W*>(static_cast<const uint8_t*>(vw) + r * w_stride);
  }
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    x[c] = reinterpret_cast<const X*>(static_cast<const uint8_t*>(vx) + c * x_stride);
  }
  // Pair (r, c) is lane 4r + c of the 16-lane per-pair vectors. Lane sources in the
  // block_scales layouts: weight r at 2r (pairs) or r, activation c at 2c or c.
  const int k2 = kMin ? 2 : 1;
  const __m512i idx_w = _mm512_setr_epi32(0, 0, 0, 0, k2, k2, k2, k2, 2 * k2, 2 * k2, 2 * k2,
                                          2 * k2, 3 * k2, 3 * k2, 3 * k2, 3 * k2);
  const __m512i idx_x = _mm512_setr_epi32(0, k2, 2 * k2, 3 * k2, 0, k2, 2 * k2, 3 * k2, 0, k2,
                                          2 * k2, 3 * k2, 0, k2, 2 * k2, 3 * k2);
  const __m512i one = _mm512_set1_epi32(1);
  __m256 acc[R][C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  __m512 mins = _mm512_setzero_ps();  // Q4_1's min terms, lane 4r + c

  // The R rows are R interleaved streams, which the hardware prefetchers follow poorly:
  // fetch the rows two tiles ahead (contiguous when the rows are) a few lines per block.
  const int64_t nb = n / 32;
  const char* next = static_cast<const char*>(vw) + 2 * R * w_stride;
  const int64_t pf_step =
      (static_cast<int64_t>(R * w_stride) / std::max<int64_t>(nb, 1) + 63) & ~63;
  // Per-pair scales of block i + 1 are computed while block i is multiplied, so their
  // latency (fp16 loads, conversion, permutes, store) stays off the critical path.
  alignas(64) float scale[2][16];  // dw_r * dx_c, lane 4r + c, for blocks i and i + 1
  auto pair_scales = [&](int64_t i, float* dst) {
    const __m512 ws = _mm512_castps256_ps512(block_scales<kMin, R>(w, i));
    const __m512 xs = _mm512_castps256_ps512(block_scales<kMin, C>(x, i));
    _mm512_store_ps(
        dst, _mm512_mul_ps(_mm512_permutexvar_ps(idx_w, ws), _mm512_permutexvar_ps(idx_x, xs)));
    if constexpr (kMin) {
      mins = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_add_epi32(idx_w, one), ws),
                             _mm512_permutexvar_ps(_mm512_add_epi32(idx_x, one), xs), mins);
    }
  };
  if (nb > 0) pair_scales(0, scale[0]);
  for (int64_t i = 0; i < nb; ++i) {
    if constexpr (C == 1) {
      for (int64_t off = 0; off < pf_step; off += 64) {
        _mm_prefetch(next + i * pf_step + off, _MM_HINT_T0);
      }
    }
    if (i + 1 < nb) pair_scales(i + 1, scale[(i + 1) & 1]);
    // Keeps the per-pair scales in memory, where the FMAs below broadcast them for free
    // (the compiler would otherwise lane-permute each one out of the register).
    asm volatile("" : "+m"(scale));
    const float* sc = scale[i & 1];
    __m256i yq[C], y0[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      yq[c] = load32(x[c][i].qs);
      y0[c] = start_value<K>(yq[c]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256i q = weight_u8<K>(w[r][i]);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        const __m256i dot = _mm256_dpbusd_epi32(y0[c], q, yq[c]);
        acc[r][c] =
            _mm256_fmadd_ps(_mm256_set1_ps(sc[4 * r + c]), _mm256_cvtepi32_ps(dot), acc[r][c]);
      }
    }
  }
  alignas(64) float m[16];
  _mm512_store_ps(m, mins);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      float v = hsum(acc[r][c]);
      if constexpr (kMin) v += m[4 * r + c];
      y[c * y_stride + r] = v;
    }
  }
}

// Q4_0 x Q8_0 in the block-sum order: up to 4 rows x 4 activations; for activation c the
// block sums of the R rows are gathered into lanes r of one i32x4, scaled and accumulated
// in lane r of acc[c] (rows beyond R are zero lanes, never stored).
template <int R, int C>
void gemm_tile_q4_0(int64_t n, const void* vw, size_t w_stride, const void* vx, size_t x_stride,
                    float* y, int64_t y_stride) {
  const BlockQ4_0* w[R];
  const BlockQ8_0* x[C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    w[r] = reinterpret_cast<const BlockQ4_0*>(static_cast<const uint8_t*>(vw) + r * w_stride);
  }
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    x[c] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(vx) + c * x_stride);
  }
  __m128 acc[C];
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) acc[c] = _mm_setzero_ps();
  const int64_t nb = n / 32;
  const char* next = static_cast<const char*>(vw) + 2 * R * w_stride;
  const int64_t pf_step =
      (static_cast<int64_t>(R * w_stride) / std::max<int64_t>(nb, 1) + 63) & ~63;
  // The rows' scales of block i + 1 are converted while block i is multiplied, keeping the
  // fp16 loads and the conversion off the critical path.
  __m128 dw_next = nb > 0 ? _mm256_castps256_ps128(block_scales<false, R>(w, 0)) : _mm_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    if constexpr (C == 1) {
      for (int64_t off = 0; off < pf_step; off += 64) {
        _mm_prefetch(next + i * pf_step + off, _MM_HINT_T0);
      }
    }
    const __m128 dw = dw_next;
    if (i + 1 < nb) dw_next = _mm256_castps256_ps128(block_scales<false, R>(w, i + 1));
    __m256i q[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) q[r] = weight_u8<Kind::Q4_0>(w[r][i]);
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const __m256i yq = load32(x[c][i].qs);
      const __m256i y0 = start_value<Kind::Q4_0>(yq);
      __m256i d[4];
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
        d[r] = r < R ? _mm256_dpbusd_epi32(y0, q[r], yq) : _mm256_setzero_si256();
      }
      const __m128 sc = _mm_mul_ps(dw, _mm_set1_ps(h2f(x[c][i].d)));
      acc[c] = _mm_fmadd_ps(sc, _mm_cvtepi32_ps(sum4_i32(d[0], d[1], d[2], d[3])), acc[c]);
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    alignas(16) float v[4];
    _mm_store_ps(v, acc[c]);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) y[c * y_stride + r] = v[r];
  }
}

void gemm_q4_0(int64_t n, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride,
               int nc, float* y, int64_t y_stride) {
  using Fn = void (*)(int64_t, const void*, size_t, const void*, size_t, float*, int64_t);
  static constexpr Fn kTiles[4][4] = {
      {gemm_tile_q4_0<1, 1>, gemm_tile_q4_0<1, 2>, gemm_tile_q4_0<1, 3>, gemm_tile_q4_0<1, 4>},
      {gemm_tile_q4_0<2, 1>, gemm_tile_q4_0<2, 2>, gemm_tile_q4_0<2, 3>, gemm_tile_q4_0<2, 4>},
      {gemm_tile_q4_0<3, 1>, gemm_tile_q4_0<3, 2>, gemm_tile_q4_0<3, 3>, gemm_tile_q4_0<3, 4>},
      {gemm_tile_q4_0<4, 1>, gemm_tile_q4_0<4, 2>, gemm_tile_q4_0<4, 3>, gemm_tile_q4_0<4, 4>},
  };
  kTiles[nr - 1][nc - 1](n, w, w_stride, x, x_stride, y, y_stride);
}

float dot_q4_0(int64_t n, const void* w, const void* x) {
  float y;
  gemm_tile_q4_0<1, 1>(n, w, 0, x, 0, &y, 1);
  return y;
}

// Q4_K x Q8_K, the order of the AVX2 dot_q45_k: per super-block, an exact i32x8 sum of
// scale_j * (lane sums of sub-block j) over the 8 sub-blocks, then acc = fma(d * dx,
// float(sum), acc); the min term is a scalar fma chain over super-blocks, fma(dmin * dx,
// float(sum_j min_j * bsum pair j), mins), subtracted last. Up to 4 rows x 2 activations:
// 16 vector registers hold the float and integer accumulators.
template <int R, int C>
void gemm_tile_q4_k(int64_t n, const void* vw, size_t w_stride, const void* vx, size_t x_stride,
                    float* y, int64_t y_stride) {
  const BlockQ4_K* w[R];
  const BlockQ8_K* x[C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    w[r] = reinterpret_cast<const BlockQ4_K*>(static_cast<const uint8_t*>(vw) + r * w_stride);
  }
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    x[c] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(vx) + c * x_stride);
  }
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[R][C];
  float mins[R][C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      acc[r][c] = _mm256_setzero_ps();
      mins[r][c] = 0.0f;
    }
  }
  for (int64_t i = 0; i < n / QK_K; ++i) {
    // The 8 six-bit scales and mins of each row's super-block as bytes of two u64 (the
    // layout k4_scale_min documents), unpacked with a few integer word operations.
    uint64_t scales[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint32_t a = load_u32(w[r][i].scales), b = load_u32(w[r][i].scales + 4),
                     c = load_u32(w[r][i].scales + 8);
      const uint32_t sc_hi = (c & 0x0f0f0f0fu) | (((a >> 6) & 0x03030303u) << 4);
      const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | (((b >> 6) & 0x03030303u) << 4);
      scales[r] = (a & 0x3f3f3f3fu) | (uint64_t{sc_hi} << 32);
      const uint64_t mins8 = (b & 0x3f3f3f3fu) | (uint64_t{m_hi} << 32);
      const float dmin = h2f(w[r][i].dmin);
      const __m256i mm = _mm256_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mins8)));
      // Each min repeated for its two 16-element halves, as k4_min_dot in quants_avx2.cpp.
      const __m256i m16 = _mm256_permutexvar_epi16(
          _mm256_setr_epi16(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), mm);
#pragma GCC unroll 4
      for (int c2 = 0; c2 < C; ++c2) {
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[c2][i].bsums));
        const __m256i md = _mm256_madd_epi16(bs, m16);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(md), _mm256_extracti128_si256(md, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
        mins[r][c2] =
            std::fma(dmin * x[c2][i].d, static_cast<float>(_mm_cvtsi128_si32(s4)), mins[r][c2]);
      }
    }
    __m256i sumi[R][C];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) sumi[r][c] = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      __m256i y0[C], y1[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        y0[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[c][i].qs + 64 * j));
        y1[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[c][i].qs + 64 * j + 32));
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256i raw =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r][i].qs + 32 * j));
        const __m256i q0 = _mm256_and_si256(raw, m4);
        const __m256i q1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        const __m256i s0 = _mm256_set1_epi16(static_cast<int16_t>((scales[r] >> (16 * j)) & 0xFF));
        const __m256i s1 =
            _mm256_set1_epi16(static_cast<int16_t>((scales[r] >> (16 * j + 8)) & 0xFF));
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
          sumi[r][c] = _mm256_dpwssd_epi32(sumi[r][c], _mm256_maddubs_epi16(q0, y0[c]), s0);
          sumi[r][c] = _mm256_dpwssd_epi32(sumi[r][c], _mm256_maddubs_epi16(q1, y1[c]), s1);
        }
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const float d = h2f(w[r][i].d);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[c][i].d), _mm256_cvtepi32_ps(sumi[r][c]),
                                    acc[r][c]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) y[c * y_stride + r] = hsum(acc[r][c]) - mins[r][c];
}

void gemm_q4_k(int64_t n, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride,
               int nc, float* y, int64_t y_stride) {
  using Fn = void (*)(int64_t, const void*, size_t, const void*, size_t, float*, int64_t);
  static constexpr Fn kTiles[4][2] = {
      {gemm_tile_q4_k<1, 1>, gemm_tile_q4_k<1, 2>},
      {gemm_tile_q4_k<2, 1>, gemm_tile_q4_k<2, 2>},
      {gemm_tile_q4_k<3, 1>, gemm_tile_q4_k<3, 2>},
      {gemm_tile_q4_k<4, 1>, gemm_tile_q4_k<4, 2>},
  };
  for (int c0 = 0; c0 < nc; c0 += 2) {
    kTiles[nr - 1][std::min(2, nc - c0) - 1](n, w, w_stride,
                                             static_cast<const uint8_t*>(x) + c0 * x_stride,
                                             x_stride, y + c0 * y_stride, y_stride);
  }
}

float dot_q4_k(int64_t n, const void* w, const void* x) {
  float y;
  gemm_tile_q4_k<1, 1>(n, w, 0, x, 0, &y, 1);
  return y;
}

template <Kind K>
void gemm(int64_t n, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc,
          float* y, int64_t y_stride) {
  using Fn = void (*)(int64_t, const void*, size_t, const void*, size_t, float*, int64_t);
  static constexpr Fn kTiles[4][4] = {
      {gemm_tile<K, 1, 1>, gemm_tile<K, 1, 2>, gemm_tile<K, 1, 3>, gemm_tile<K, 1, 4>},
      {gemm_tile<K, 2, 1>, gemm_tile<K, 2, 2>, gemm_tile<K, 2, 3>, gemm_tile<K, 2, 4>},
      {gemm_tile<K, 3, 1>, gemm_tile<K, 3, 2>, gemm_tile<K, 3, 3>, gemm_tile<K, 3, 4>},
      {gemm_tile<K, 4, 1>, gemm_tile<K, 4, 2>, gemm_tile<K, 4, 3>, gemm_tile<K, 4, 4>},
  };
  kTiles[nr - 1][nc - 1](n, w, w_stride, x, x_stride, y, y_stride);
}

template <Kind K>
float dot(int64_t n, const void* w, const void* x) {
  float y;
  gemm_tile<K, 1, 1>(n, w, 0, x, 0, &y, 1);
  return y;
}

inline int slot(DType t) {
  return static_cast<int>(t);
}

}  // namespace

void fill_avx512_kernels(KernelTable& t) {
  t.vec_dot[slot(DType::Q4_0)] = dot_q4_0;
  t.vec_dot[slot(DType::Q4_1)] = dot<Kind::Q4_1>;
  t.vec_dot[slot(DType::Q8_0)] = dot<Kind::Q8_0>;
  t.gemm_tile[slot(DType::Q4_0)] = gemm_q4_0;
  t.gemm_tile[slot(DType::Q4_1)] = gemm<Kind::Q4_1>;
  t.gemm_tile[slot(DType::Q8_0)] = gemm<Kind::Q8_0>;
  t.vec_dot[slot(DType::Q4_K)] = dot_q4_k;
  t.gemm_tile[slot(DType::Q4_K)] = gemm_q4_k;
}

}  // namespace tessera::cpu
