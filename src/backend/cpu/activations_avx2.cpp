// AVX2 + FMA activation kernels (see SiluMulFn in quants.h). Compiled with -mavx2 -mfma and
// only reached through quants.cpp after the CPU check.
//
// The arithmetic of silu_mul_ref in quants_ref.cpp, 8 lanes at a time: the same fused
// multiply-adds, and the 2^n scaling done by building 2^n in the exponent field, which is
// exact wherever |n| <= 126; a vector with a lane beyond that takes the reference per lane.
#include <immintrin.h>

#include <cmath>

#include "backend/cpu/quants_impl.h"

#pragma GCC optimize("fp-contract=off")

namespace tessera::cpu {
namespace {

// exp(x) per lane as expf_poly_ref; false (and nothing computed) when some |n| > 126.
inline bool expf8(__m256 x, __m256* out) {
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
  const __m256 n = _mm256_sub_ps(z, r);
  const __m256 far =
      _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n), _mm256_set1_ps(126.0f), _CMP_GT_OQ);
  if (_mm256_movemask_ps(far) != 0) return false;
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
  // 2^n: the integer n sits in the low bits of z; shifted into the exponent field of 1.0f.
  const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
  const __m256 k =
      _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
  *out = _mm256_mul_ps(j, k);
  return true;
}

void silu_mul(float* gate, const float* up, int64_t n) {
  const int64_t nv = n & ~int64_t{15};
  int64_t i = 0;
  for (; i < nv; i += 8) {
    const __m256 x = _mm256_loadu_ps(gate + i);
    __m256 e;
    if (!expf8(_mm256_sub_ps(_mm256_setzero_ps(), x), &e)) {
      for (int l = 0; l < 8; ++l) {  // the reference's arithmetic, lane by lane
        const float g = gate[i + l];
        gate[i + l] = g / (1.0f + expf_poly(0.0f - g)) * up[i + l];
      }
      continue;
    }
    const __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) {
    const float x = gate[i];
    gate[i] = x / (1.0f + std::exp(-x)) * up[i];
  }
}

}  // namespace

void fill_avx2_activation_kernels(KernelTable& t) {
  t.silu_mul = silu_mul;
}

}  // namespace tessera::cpu
