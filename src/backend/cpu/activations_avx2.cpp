// AVX2 + FMA activation kernels (see SiluMulFn in quants.h). Compiled with -mavx2 -mfma and
// only reached through quants.cpp after the CPU check.
//
// The arithmetic of silu_mul_ref in quants_ref.cpp, 8 lanes at a time: the same fused
// multiply-adds, and the 2^n scaling done by building 2^n in the exponent field, which is
// exact wherever |n| <= 126; a vector with a lane beyond that takes the reference per lane.
#include <immintrin.h>

#include <cmath>

#include "backend/cpu/quants_impl.h"
#include "backend/cpu/simd_x86.h"

#pragma GCC optimize("fp-contract=off")

namespace tessera::cpu {
namespace {

// exp(x) per lane as expf_poly; false (and *out untouched) when some |n| > 126.
inline bool expf8(__m256 x, __m256* out) {
  __m256 n;
  const __m256 y = expf_poly8(x, &n);
  if (_mm256_movemask_ps(beyond_126(n)) != 0) return false;
  *out = y;
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
