// AVX2 + FMA GeluFn: gelu_ref.cpp's arithmetic, 8 lanes at a time (the same operations in the
// same order; expf_poly8 equals expf_poly on the range z <= 9 keeps it in). Compiled with
// -mavx2 -mfma and only reached through quants.cpp after the CPU check.
#include <immintrin.h>

#include "backend/cpu/quants_impl.h"
#include "backend/cpu/simd_x86.h"

#pragma GCC optimize("fp-contract=off")

namespace tessera::cpu {
namespace {

inline __m256 gelu8(__m256 x) {
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  // min(a, 9) returns 9 for a NaN a, as fmin does.
  const __m256 z =
      _mm256_min_ps(_mm256_mul_ps(ax, _mm256_set1_ps(0.70710678118654752f)), _mm256_set1_ps(9.0f));
  const __m256 t = _mm256_div_ps(
      _mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), z, _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(1.061405429f), t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  __m256 n;
  const __m256 e =
      expf_poly8(_mm256_xor_ps(_mm256_mul_ps(z, z), _mm256_set1_ps(-0.0f)), &n);  // |n| <= 117
  const __m256 q = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_mul_ps(p, t)), e);
  const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), q), q, neg);
  return _mm256_mul_ps(x, phi);
}

void gelu(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
  if (i < n) {  // the tail through a padded vector: the same lanes' arithmetic
    float buf[8] = {};
    for (int64_t k = i; k < n; ++k) buf[k - i] = x[k];
    _mm256_storeu_ps(buf, gelu8(_mm256_loadu_ps(buf)));
    for (int64_t k = i; k < n; ++k) x[k] = buf[k - i];
  }
}

}  // namespace

void fill_avx2_gelu_kernels(KernelTable& t) {
  t.gelu = gelu;
}

}  // namespace tessera::cpu
