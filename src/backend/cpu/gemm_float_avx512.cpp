// AVX-512 dots of F32, F16 and BF16 weights against F32 activations: the single-row dot
// (vec_dot) and the tiled dot (GemmTileFn) of those types at this level, what encoders and
// unquantized checkpoints spend their time in.
//
// Summation order, shared by both so that a tile's result is vec_dot's bit for bit: per
// (row, activation) pair 16 lanes, lane j the fma chain over elements i = j (mod 16), 16
// elements a step (the last step's missing elements are zeros on both sides, which leave a
// lane unchanged); then the lanes are added pairwise, 16 -> 8 -> 4 -> 2 -> 1 (reduce16).
// A tile of 4 rows x 4 activations keeps its 16 accumulators and the 4 activation vectors in
// registers, so each weight vector loaded (and, for F16 / BF16, converted) serves 4
// activations and each activation vector 4 rows. (The AVX2 level keeps its own order: the
// levels differ in the last bits of these dots, as they may.)
#include <immintrin.h>

#include "backend/cpu/quants_impl.h"

namespace tessera::cpu {
namespace {

enum class W { F32, F16, BF16 };

// Weights [i, i + 16) of a row as floats (exact conversions); lanes past `mask` are 0.
template <W K>
inline __m512 load_w(const void* row, int64_t i, __mmask16 mask) {
  if constexpr (K == W::F32) {
    if (mask == 0xFFFF) return _mm512_loadu_ps(static_cast<const float*>(row) + i);
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(row) + i);
  } else {
    const auto* p = static_cast<const uint16_t*>(row) + i;
    const __m256i h = mask == 0xFFFF ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                                     : _mm256_maskz_loadu_epi16(mask, p);
    if constexpr (K == W::F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

inline float reduce16(__m512 v) {
  const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
  return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
}

// y[c * y_stride + r] = dot(row r, activation c) for NR rows x NC activations.
template <W K, int NR, int NC>
void tile(int64_t n, const uint8_t* w, size_t w_stride, const uint8_t* x, size_t x_stride, float* y,
          int64_t y_stride) {
  __m512 acc[NR][NC];
  for (int r = 0; r < NR; ++r)
    for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_setzero_ps();
  const float* xs[NC];
  for (int c = 0; c < NC; ++c) xs[c] = reinterpret_cast<const float*>(x + c * x_stride);
  const int64_t n16 = n & ~int64_t{15};
  for (int64_t i = 0; i < n16; i += 16) {
    __m512 xv[NC];
    for (int c = 0; c < NC; ++c) xv[c] = _mm512_loadu_ps(xs[c] + i);
    for (int r = 0; r < NR; ++r) {
      const __m512 wv = load_w<K>(w + r * w_stride, i, 0xFFFF);
      for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_fmadd_ps(wv, xv[c], acc[r][c]);
    }
  }
  if (n16 < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - n16)) - 1);
    __m512 xv[NC];
    for (int c = 0; c < NC; ++c) xv[c] = _mm512_maskz_loadu_ps(mask, xs[c] + n16);
    for (int r = 0; r < NR; ++r) {
      const __m512 wv = load_w<K>(w + r * w_stride, n16, mask);
      for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_fmadd_ps(wv, xv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int c = 0; c < NC; ++c) y[c * y_stride + r] = reduce16(acc[r][c]);
}

template <W K, int NR>
void rows(int64_t n, const uint8_t* w, size_t w_stride, const uint8_t* x, size_t x_stride, int nc,
          float* y, int64_t y_stride) {
  switch (nc) {
    case 1:
      return tile<K, NR, 1>(n, w, w_stride, x, x_stride, y, y_stride);
    case 2:
      return tile<K, NR, 2>(n, w, w_stride, x, x_stride, y, y_stride);
    case 3:
      return tile<K, NR, 3>(n, w, w_stride, x, x_stride, y, y_stride);
    default:
      return tile<K, NR, 4>(n, w, w_stride, x, x_stride, y, y_stride);
  }
}

template <W K>
void gemm(int64_t n, const void* vw, size_t w_stride, int nr, const void* vx, size_t x_stride,
          int nc, float* y, int64_t y_stride) {
  const auto* w = static_cast<const uint8_t*>(vw);
  const auto* x = static_cast<const uint8_t*>(vx);
  switch (nr) {
    case 1:
      return rows<K, 1>(n, w, w_stride, x, x_stride, nc, y, y_stride);
    case 2:
      return rows<K, 2>(n, w, w_stride, x, x_stride, nc, y, y_stride);
    case 3:
      return rows<K, 3>(n, w, w_stride, x, x_stride, nc, y, y_stride);
    default:
      return rows<K, 4>(n, w, w_stride, x, x_stride, nc, y, y_stride);
  }
}

template <W K>
float dot(int64_t n, const void* w, const void* x) {
  float y;
  tile<K, 1, 1>(n, static_cast<const uint8_t*>(w), 0, static_cast<const uint8_t*>(x), 0, &y, 1);
  return y;
}

inline int slot(DType t) {
  return static_cast<int>(t);
}

}  // namespace

void fill_avx512_float_gemm_kernels(KernelTable& t) {
  t.vec_dot[slot(DType::F32)] = dot<W::F32>;
  t.vec_dot[slot(DType::F16)] = dot<W::F16>;
  t.vec_dot[slot(DType::BF16)] = dot<W::BF16>;
  t.gemm_tile[slot(DType::F32)] = gemm<W::F32>;
  t.gemm_tile[slot(DType::F16)] = gemm<W::F16>;
  t.gemm_tile[slot(DType::BF16)] = gemm<W::BF16>;
}

}  // namespace tessera::cpu
