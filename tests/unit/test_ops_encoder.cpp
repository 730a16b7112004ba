// The backend ops for encoders and pooled embeddings, against naive double-precision
// references written from their definitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/quants.h"
#include "random_data.h"

namespace tessera {
namespace {

TEST(OpsEncoder, LayerNorm) {
  auto be = make_cpu_backend(2);
  const int n = 9, d = 384;
  // Rows with a large mean against their spread: the case a one-pass variance gets wrong.
  auto x = random_vec(n * d, 1, 99.0f, 101.0f);
  auto w = random_vec(d, 2), b = random_vec(d, 3);
  for (bool with_bias : {true, false}) {
    std::vector<float> y(n * d);
    be->layer_norm(x.data(), w.data(), with_bias ? b.data() : nullptr, y.data(), n, d, 1e-12f);
    for (int i = 0; i < n; ++i) {
      double mean = 0, var = 0;
      for (int j = 0; j < d; ++j) mean += x[i * d + j];
      mean /= d;
      for (int j = 0; j < d; ++j) var += (x[i * d + j] - mean) * (x[i * d + j] - mean);
      var /= d;
      for (int j = 0; j < d; ++j) {
        const double want =
            (x[i * d + j] - mean) / std::sqrt(var + 1e-12) * w[j] + (with_bias ? b[j] : 0.0);
        EXPECT_NEAR(y[i * d + j], want, 2e-4) << i << "," << j;
      }
    }
  }
  // In place, as the encoder calls it.
  auto inplace = x;
  std::vector<float> y(n * d);
  be->layer_norm(x.data(), w.data(), b.data(), y.data(), n, d, 1e-5f);
  be->layer_norm(inplace.data(), w.data(), b.data(), inplace.data(), n, d, 1e-5f);
  EXPECT_EQ(inplace, y);
}

TEST(OpsEncoder, GeluIsTheErfForm) {
  auto be = make_cpu_backend(2);
  const int n = 5, d = 401;
  auto x = random_vec(n * d, 4, -8.0f, 8.0f);
  auto y = x;
  be->gelu(y.data(), n, d);
  for (int i = 0; i < n * d; ++i) {
    const double want = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
    EXPECT_NEAR(y[i], want, 1e-5 + 1e-6 * std::fabs(want)) << x[i];
  }
  // Where the tanh approximation is off by ~4e-4 (|x| ~ 2.5-3), the erf form holds.
  std::vector<float> z = {-3.0f, -2.5f, 2.5f, 0.0f};
  be->gelu(z.data(), 1, 4);
  EXPECT_NEAR(z[0], -0.00404969, 1e-6);
  EXPECT_NEAR(z[1], -0.01552416, 1e-6);
  EXPECT_NEAR(z[2], 2.48447584, 1e-6);
  EXPECT_EQ(z[3], 0.0f);
}

// The GELU kernel of every SIMD level gives the scalar reference's bits (any length, so the
// vector tails too), within 2e-7 relative of the exact erf form.
TEST(OpsEncoder, GeluKernelsEqualTheScalarReference) {
  const cpu::GeluFn ref = cpu::gelu_fn_for("scalar");
  ASSERT_NE(ref, nullptr);
  std::vector<float> x = random_vec(4099, 9, -12.0f, 12.0f);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 6.36f, -6.36f, 30.0f, -30.0f})
    x.push_back(v);
  auto want = x;
  ref(want.data(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double exact = 0.5 * x[i] * std::erfc(-x[i] / std::sqrt(2.0));
    EXPECT_NEAR(want[i], exact, 2e-7 * std::max(1.0, std::fabs(double(x[i])))) << x[i];
  }
  int n_levels = 0;
  for (const char* level : {"scalar", "avx2", "avx512"}) {
    const cpu::GeluFn f = cpu::gelu_fn_for(level);
    if (f == nullptr) continue;
    ++n_levels;
    for (size_t n : {size_t{1}, size_t{7}, size_t{8}, size_t{13}, x.size()}) {
      auto got = x;
      f(got.data(), static_cast<int64_t>(n));
      for (size_t i = 0; i < x.size(); ++i)
        ASSERT_EQ(got[i], i < n ? want[i] : x[i]) << level << " n=" << n << " x=" << x[i];
    }
  }
  EXPECT_GE(n_levels, 1);
}

// Naive bidirectional attention within each sequence, in double.
std::vector<double> attention_ref(const std::vector<float>& q, const std::vector<float>& k,
                                  const std::vector<float>& v, int n_head, int n_head_kv, int hd,
                                  float scale, const std::vector<int32_t>& start) {
  const int n = start.back(), qd = n_head * hd, kd = n_head_kv * hd;
  std::vector<double> out(static_cast<size_t>(n) * qd);
  for (size_t s = 0; s + 1 < start.size(); ++s)
    for (int t = start[s]; t < start[s + 1]; ++t)
      for (int h = 0; h < n_head; ++h) {
        const int kh = h / (n_head / n_head_kv);
        std::vector<double> w;
        double mx = -1e300, sum = 0;
        for (int j = start[s]; j < start[s + 1]; ++j) {
          double dot = 0;
          for (int c = 0; c < hd; ++c)
            dot += double(q[t * qd + h * hd + c]) * k[j * kd + kh * hd + c];
          w.push_back(dot * scale);
          mx = std::max(mx, w.back());
        }
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int c = 0; c < hd; ++c) {
          double o = 0;
          for (int j = start[s]; j < start[s + 1]; ++j)
            o += w[j - start[s]] / sum * v[j * kd + kh * hd + c];
          out[t * qd + h * hd + c] = o;
        }
      }
  return out;
}

TEST(OpsEncoder, PackedAttentionSeesOnlyItsOwnSequence) {
  auto be = make_cpu_backend(2);
  const int n_head = 4, n_head_kv = 2, hd = 16;
  // Sequences of 1, 7, 0 (empty) and 30 tokens, packed back to back.
  const std::vector<int32_t> start = {0, 1, 8, 8, 38};
  const int n = start.back();
  auto q = random_vec(n * n_head * hd, 5), k = random_vec(n * n_head_kv * hd, 6),
       v = random_vec(n * n_head_kv * hd, 7);
  std::vector<float> out(n * n_head * hd, -1.0f);
  const float scale = 1.0f / std::sqrt(float(hd));
  be->attention_packed(q.data(), k.data(), v.data(), out.data(), n_head, n_head_kv, hd, scale,
                       start.data(), 4);
  const auto want = attention_ref(q, k, v, n_head, n_head_kv, hd, scale, start);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], want[i], 1e-5) << i;

  // A token's result does not depend on its batch mates: sequence 1 alone gives the same.
  const std::vector<int32_t> alone = {0, 7};
  std::vector<float> q1(q.begin() + 1 * n_head * hd, q.begin() + 8 * n_head * hd),
      k1(k.begin() + 1 * n_head_kv * hd, k.begin() + 8 * n_head_kv * hd),
      v1(v.begin() + 1 * n_head_kv * hd, v.begin() + 8 * n_head_kv * hd), o1(7 * n_head * hd);
  be->attention_packed(q1.data(), k1.data(), v1.data(), o1.data(), n_head, n_head_kv, hd, scale,
                       alone.data(), 1);
  for (size_t i = 0; i < o1.size(); ++i) EXPECT_EQ(o1[i], out[n_head * hd + i]) << i;
}

TEST(OpsEncoder, PoolRows) {
  auto be = make_cpu_backend(2);
  const int d = 5;
  const std::vector<int32_t> start = {0, 3, 4, 4, 10};
  auto x = random_vec(10 * d, 8);
  for (RowPool kind : {RowPool::MEAN, RowPool::FIRST, RowPool::LAST}) {
    std::vector<float> out(4 * d, 42.0f);
    be->pool_rows(x.data(), d, start.data(), 4, kind, out.data());
    for (int s = 0; s < 4; ++s)
      for (int c = 0; c < d; ++c) {
        double want = 0;
        if (start[s + 1] > start[s]) {
          if (kind == RowPool::FIRST) want = x[start[s] * d + c];
          if (kind == RowPool::LAST) want = x[(start[s + 1] - 1) * d + c];
          if (kind == RowPool::MEAN) {
            for (int r = start[s]; r < start[s + 1]; ++r) want += x[r * d + c];
            want /= start[s + 1] - start[s];
          }
        }
        EXPECT_NEAR(out[s * d + c], want, 1e-6) << s << "," << c;
      }
  }
}

}  // namespace
}  // namespace tessera
