// Random test inputs shared by the op tests.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"

namespace tessera {

// n floats uniform in [lo, hi), reproducible from `seed`.
inline std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Byte offsets of the fp16 scale fields (d, m / dmin) in one block of quantized type t: what
// random bytes must have set to finite, moderate values to make a usable block. Empty for
// other types.
inline std::vector<int> fp16_scale_offsets(DType t) {
  switch (t) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
      return {0};
    case DType::Q4_1:
    case DType::Q5_1:
    case DType::Q4_K:
    case DType::Q5_K:
      return {0, 2};
    case DType::Q2_K:
      return {80, 82};
    case DType::Q3_K:
      return {108};
    case DType::Q6_K:
      return {208};
    default:
      return {};
  }
}

}  // namespace tessera
