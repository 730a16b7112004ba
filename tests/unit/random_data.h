// Random test inputs shared by the op tests.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace tessera {

// n floats uniform in [lo, hi), reproducible from `seed`.
inline std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

}  // namespace tessera
