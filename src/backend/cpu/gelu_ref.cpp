// The scalar reference of GeluFn (quants.h): BERT's exact GELU, x Φ(x), with
//   z = min(|x| / sqrt(2), 9),  t = 1 / (1 + 0.3275911 z)
//   Φ(-|x|) = erfc(z) / 2 = 0.5 (t P(t)) e^(-z²)     (Abramowitz & Stegun 7.1.26, |error| in erf
//                                                    < 1.5e-7; P of degree 4 in Horner form)
//   gelu(x) = x Φ(-|x|) for x < 0, x (1 - Φ(-|x|)) otherwise
// computed from the tail, so there is no cancellation for negative x. e^(-z²) is expf_poly;
// z <= 9 keeps it in the normal range (erf(9 / sqrt 2 ...) is 1 in float long before).
// Operations in this order, fused where written, none contracted by the compiler: the SIMD
// versions (gelu_avx2.cpp) give the same bits.
#include <cmath>

#include "backend/cpu/quants_impl.h"

#pragma GCC optimize("fp-contract=off")

namespace tessera::cpu {
namespace {

float gelu1(float x) {
  const float z = std::fmin(std::fabs(x) * 0.70710678118654752f, 9.0f);
  const float t = 1.0f / std::fma(0.3275911f, z, 1.0f);
  const float p =
      std::fma(std::fma(std::fma(std::fma(1.061405429f, t, -1.453152027f), t, 1.421413741f), t,
                        -0.284496736f),
               t, 0.254829592f);
  const float q = 0.5f * (p * t) * expf_poly(-(z * z));
  return x * (x < 0.0f ? q : 1.0f - q);
}

void gelu_ref(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = gelu1(x[i]);
}

}  // namespace

void fill_ref_gelu_kernels(KernelTable& t) {
  t.gelu = gelu_ref;
}

}  // namespace tessera::cpu
