// The backend ops added for the architecture families beyond Llama, against naive
// references written from their definitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/quants.h"
#include "random_data.h"

namespace tessera {
namespace {

double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST(OpsExt, GeluMul) {
  auto be = make_cpu_backend(2);
  const int n = 7, d = 300;
  auto g = random_vec(n * d, 1, -6, 6), u = random_vec(n * d, 2);
  auto out = g;
  be->gelu_mul(out.data(), u.data(), n, d);
  for (int i = 0; i < n * d; ++i) EXPECT_NEAR(out[i], gelu_tanh_ref(g[i]) * u[i], 1e-5) << i;
}

TEST(OpsExt, ScaleAndSoftcap) {
  auto be = make_cpu_backend(2);
  const int n = 3, d = 50;
  auto x = random_vec(n * d, 3, -100, 100);
  auto s = x, c = x;
  be->scale(s.data(), n, d, 0.25f);
  be->softcap(c.data(), n, d, 30.0f);
  for (int i = 0; i < n * d; ++i) {
    EXPECT_FLOAT_EQ(s[i], x[i] * 0.25f);
    EXPECT_NEAR(c[i], 30.0 * std::tanh(x[i] / 30.0), 1e-4);
    EXPECT_LT(std::fabs(c[i]), 30.0f + 1e-4f);
  }
}

TEST(OpsExt, AddScaled) {
  auto be = make_cpu_backend(2);
  const int n = 5, d = 33;
  auto x = random_vec(n * d, 4), y = random_vec(n * d, 5), w = random_vec(n, 6);
  for (bool sig : {false, true}) {
    auto out = x;
    be->add_scaled(out.data(), y.data(), w.data(), n, d, sig);
    for (int i = 0; i < n; ++i) {
      const double wi = sig ? 1.0 / (1.0 + std::exp(-w[i])) : w[i];
      for (int j = 0; j < d; ++j)
        EXPECT_NEAR(out[i * d + j], x[i * d + j] + wi * y[i * d + j], 1e-5);
    }
  }
}

float fp16_round(float x) {
  return cpu::fp16_to_fp32(cpu::fp32_to_fp16(x));
}

std::vector<float> fp16_rounded(std::vector<float> x) {
  for (float& e : x) e = fp16_round(e);
  return x;
}

// Naive attention over one sequence held contiguously: keys/values [n_ctx, kv_dim], in
// double, on the values the backend sees: q, k, v and the softmax weights rounded to fp16
// (the KV cache holds fp16; the backend rounds q and the weights as llama.cpp does).
std::vector<float> attention_ref(std::vector<float> q, std::vector<float> k, std::vector<float> v,
                                 const std::vector<int32_t>& pos, int n_head, int n_head_kv, int hd,
                                 const AttentionOptions& o, bool f16) {
  if (f16) {
    q = fp16_rounded(std::move(q));
    k = fp16_rounded(std::move(k));
    v = fp16_rounded(std::move(v));
  }
  const int n = static_cast<int>(pos.size()), kv_dim = n_head_kv * hd;
  std::vector<float> out(size_t(n) * n_head * hd, 0.0f);
  // ALiBi slopes for the model's heads with the given maximum bias (ALiBi paper, extended to
  // head counts that are not powers of two as in ggml); head h here is the model's head
  // alibi_head0 + h when the op has a slice of them.
  const int model_heads = o.alibi_n_head > 0 ? o.alibi_n_head : n_head;
  auto slope = [&](int local) {
    const int h = o.alibi_head0 + local;
    const int base = 1 << int(std::floor(std::log2(double(model_heads))));
    if (h < base) return std::pow(2.0, -o.alibi_max_bias * (h + 1) / base);
    return std::pow(2.0, -o.alibi_max_bias / 2.0 * (2 * (h - base) + 1) / base);
  };
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < n_head; ++h) {
      const int kvh = h / (n_head / n_head_kv);
      std::vector<double> s;
      std::vector<int> js;
      for (int j = 0; j <= pos[t]; ++j) {
        if (o.n_window > 0 && pos[t] - j >= o.n_window) continue;
        double dot = 0;
        for (int d = 0; d < hd; ++d)
          dot += double(q[(t * n_head + h) * hd + d]) * k[j * kv_dim + kvh * hd + d];
        dot *= o.scale;
        if (o.softcap > 0) dot = o.softcap * std::tanh(dot / o.softcap);
        if (o.alibi_max_bias > 0) dot -= slope(h) * (pos[t] - j);
        s.push_back(dot);
        js.push_back(j);
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (size_t i = 0; i < s.size(); ++i)
        for (int d = 0; d < hd; ++d)
          out[(t * n_head + h) * hd + d] +=
              float((f16 ? fp16_round(float(s[i] / sum)) : s[i] / sum) *
                    v[js[i] * kv_dim + kvh * hd + d]);
    }
  return out;
}

void check_attention_type(const AttentionOptions& o, int n_head, int n_head_kv, DType type) {
  SCOPED_TRACE(dtype_name(type));
  auto be = make_cpu_backend(2);
  const int hd = 16, kv_dim = n_head_kv * hd, n_ctx = 37, bs = 4;
  // Paged layout: logical block i lives in physical block perm[i].
  const int n_blocks = (n_ctx + bs - 1) / bs;
  std::vector<int32_t> table(n_blocks);
  std::iota(table.begin(), table.end(), 0);
  std::reverse(table.begin(), table.end());
  auto k = random_vec(size_t(n_ctx) * kv_dim, 10), v = random_vec(size_t(n_ctx) * kv_dim, 11);
  // Storage for either type (f32 needs two uint16 per value).
  const size_t per = type == DType::F32 ? 2 : 1;
  std::vector<uint16_t> kc(size_t(n_blocks) * bs * kv_dim * per), vc(kc.size());
  std::vector<int32_t> slots(n_ctx), pos(n_ctx), seq(n_ctx, 0);
  for (int j = 0; j < n_ctx; ++j) {
    pos[j] = j;
    slots[j] = table[j / bs] * bs + j % bs;
  }
  const int32_t* tables[] = {table.data()};
  AttentionBatch ab;
  ab.n_tokens = n_ctx;
  ab.pos = pos.data();
  ab.seq_of = seq.data();
  ab.block_tables = tables;
  ab.slots = slots.data();
  ab.block_size = bs;
  KVLayer layer{type, kc.data(), vc.data()};
  be->store_kv(layer, k.data(), v.data(), kv_dim, ab);
  auto q = random_vec(size_t(n_ctx) * n_head * hd, 12);
  std::vector<float> out(q.size());
  be->attention_ext(q.data(), layer, out.data(), n_head, n_head_kv, hd, o, ab);
  const bool f16 = type == DType::F16;
  auto ref = attention_ref(q, k, v, pos, n_head, n_head_kv, hd, o, f16);
  // f32: the same arithmetic in double. f16 with soft-capping or ALiBi: the reference rounds
  // the same values, but its double-precision softmax can round a weight to the
  // neighbouring fp16 value: one fp16 step of a weight <= 1 (2^-11) times |v| <= 1 bounds the
  // difference. f16 with a window alone: plain attention's flash order, whose fp16
  // accumulator rounds once per key (the bound of AttentionF16IsSoftmaxAndBatchInvariant).
  const bool flash = ext_takes_flash_order(layer, o);
  const double tol = flash ? 0.02 : f16 ? 1.0 / 2048 : 2e-5;
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], tol) << i;
}

void check_attention(const AttentionOptions& o, int n_head, int n_head_kv) {
  check_attention_type(o, n_head, n_head_kv, DType::F32);
  check_attention_type(o, n_head, n_head_kv, DType::F16);
}

TEST(OpsExt, AttentionMatchesPlainAttention) {
  AttentionOptions o;
  o.scale = 0.25f;
  check_attention(o, 4, 2);
}

TEST(OpsExt, AttentionSlidingWindow) {
  AttentionOptions o;
  o.scale = 0.25f;
  for (int w : {1, 5, 16, 100}) {
    o.n_window = w;
    check_attention(o, 4, 1);
  }
}

TEST(OpsExt, AttentionAlibi) {
  AttentionOptions o;
  o.scale = 0.25f;
  o.alibi_max_bias = 8.0f;
  check_attention(o, 8, 8);  // power-of-two head count
  check_attention(o, 6, 6);  // interleaved slopes for the heads past 4
}

// A slice of the model's heads (a tensor-parallel rank's): each head takes the slope of its
// index among the model's heads, not among the slice's.
TEST(OpsExt, AttentionAlibiHeadSlice) {
  AttentionOptions o;
  o.scale = 0.25f;
  o.alibi_max_bias = 8.0f;
  o.alibi_n_head = 6;
  o.alibi_head0 = 2;
  check_attention(o, 3, 3);  // heads 2-4 of 6: across the power-of-two boundary at 4
  o.alibi_head0 = 3;
  check_attention(o, 3, 1);  // heads 3-5, one KV head
  o.alibi_n_head = 8;
  o.alibi_head0 = 4;
  check_attention(o, 4, 2);  // the second half of 8
}

TEST(OpsExt, AttentionSoftcapWithWindow) {
  AttentionOptions o;
  o.scale = 1.0f;
  o.softcap = 2.0f;
  o.n_window = 7;
  check_attention(o, 4, 2);
}

// Plain attention over an fp16 cache (llama.cpp's flash-attention order) is softmax
// attention up to its fp16 accumulator's rounding, and a token's row does not depend on
// its batch: each query row alone gives the bits it gets inside the whole prompt.
TEST(OpsExt, AttentionF16IsSoftmaxAndBatchInvariant) {
  auto be = make_cpu_backend(2);
  const int n_head = 6, n_head_kv = 2, hd = 64, kv_dim = n_head_kv * hd, n_ctx = 29, bs = 4;
  const int n_blocks = (n_ctx + bs - 1) / bs;
  std::vector<int32_t> table(n_blocks), slots(n_ctx), pos(n_ctx), seq(n_ctx, 0);
  std::iota(table.rbegin(), table.rend(), 0);  // physical blocks in reverse order
  for (int j = 0; j < n_ctx; ++j) {
    pos[j] = j;
    slots[j] = table[j / bs] * bs + j % bs;
  }
  const int32_t* tables[] = {table.data()};
  AttentionBatch ab{n_ctx, pos.data(), seq.data(), tables, slots.data(), bs};
  auto k = random_vec(size_t(n_ctx) * kv_dim, 30), v = random_vec(size_t(n_ctx) * kv_dim, 31);
  auto q = random_vec(size_t(n_ctx) * n_head * hd, 32);
  std::vector<uint16_t> kc(size_t(n_blocks) * bs * kv_dim), vc(kc.size());
  KVLayer layer{DType::F16, kc.data(), vc.data()};
  be->store_kv(layer, k.data(), v.data(), kv_dim, ab);
  const float scale = 0.125f;
  std::vector<float> out(q.size());
  be->attention(q.data(), layer, out.data(), n_head, n_head_kv, hd, scale, ab);
  AttentionOptions o;
  o.scale = scale;
  const auto ref = attention_ref(q, k, v, pos, n_head, n_head_kv, hd, o, /*f16=*/false);
  // fp16 inputs (relative 2^-11 on q, k, v of magnitude <= 2) and up to n_ctx roundings of
  // the fp16 accumulator.
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 0.02) << i;
  for (int t = 0; t < n_ctx; t += 7) {
    AttentionBatch one{1, &pos[t], &seq[t], tables, &slots[t], bs};
    std::vector<float> row(size_t(n_head) * hd);
    be->attention(q.data() + size_t(t) * n_head * hd, layer, row.data(), n_head, n_head_kv, hd,
                  scale, one);
    for (int i = 0; i < n_head * hd; ++i)
      ASSERT_EQ(row[i], out[size_t(t) * n_head * hd + i]) << t << "," << i;
  }
}

TEST(OpsExt, AttentionDecodeStepSeesWindowOnly) {
  // One query at position p with window w, over an fp16 cache, gives the bits of plain
  // attention over the last w keys alone: the same query at position w - 1 of a sequence
  // whose block table (block size 1) lists just those keys' slots.
  auto be = make_cpu_backend(1);
  const int n_head = 4, n_head_kv = 2, hd = 64, kv_dim = n_head_kv * hd, n_ctx = 20;
  auto k = random_vec(n_ctx * kv_dim, 20), v = random_vec(n_ctx * kv_dim, 21);
  auto q = random_vec(n_head * hd, 22);
  std::vector<int32_t> table(n_ctx), slots(n_ctx), pos(n_ctx), seq(n_ctx, 0);
  std::iota(table.begin(), table.end(), 0);
  std::iota(slots.begin(), slots.end(), 0);
  std::iota(pos.begin(), pos.end(), 0);
  const int32_t* tables[] = {table.data()};
  AttentionBatch ab{n_ctx, pos.data(), seq.data(), tables, slots.data(), 1};
  std::vector<uint16_t> kc(n_ctx * kv_dim), vc(n_ctx * kv_dim);
  KVLayer layer{DType::F16, kc.data(), vc.data()};
  be->store_kv(layer, k.data(), v.data(), kv_dim, ab);
  for (int w : {1, 3, 19, 20, 64}) {
    SCOPED_TRACE("window " + std::to_string(w));
    int32_t p_last = n_ctx - 1, s_last = n_ctx - 1, seq0 = 0;
    AttentionBatch one{1, &p_last, &seq0, tables, &s_last, 1};
    AttentionOptions o;
    o.scale = 0.125f;
    o.n_window = w;
    std::vector<float> out(n_head * hd), plain(n_head * hd);
    be->attention_ext(q.data(), layer, out.data(), n_head, n_head_kv, hd, o, one);
    const int first = std::max(0, n_ctx - w);
    std::vector<int32_t> window(table.begin() + first, table.end());
    const int32_t* wtables[] = {window.data()};
    int32_t p_window = n_ctx - first - 1;
    AttentionBatch alone{1, &p_window, &seq0, wtables, &s_last, 1};
    be->attention(q.data(), layer, plain.data(), n_head, n_head_kv, hd, o.scale, alone);
    for (int i = 0; i < n_head * hd; ++i) ASSERT_EQ(out[i], plain[i]) << i;
  }
}

TEST(OpsExt, MoeRoute) {
  auto be = make_cpu_backend(2);
  const int n = 9, X = 8, K = 2;
  auto logits = random_vec(n * X, 30, -3, 3);
  logits[5 * X + 1] = logits[5 * X + 6] = 10.0f;  // a tie: the lower index comes first
  for (int mode = 0; mode < 3; ++mode) {
    MoeRouting o;
    o.norm_topk = mode == 1;
    o.softmax_after_topk = mode == 2;
    std::vector<int32_t> ids(n * K);
    std::vector<float> w(n * K);
    be->moe_route(logits.data(), n, X, K, o, ids.data(), w.data());
    for (int t = 0; t < n; ++t) {
      const float* l = &logits[t * X];
      std::vector<int> order(X);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
      double z = 0, zk = 0;
      for (int e = 0; e < X; ++e) z += std::exp(double(l[e]));
      for (int i = 0; i < K; ++i) zk += std::exp(double(l[order[i]]));
      for (int i = 0; i < K; ++i) {
        EXPECT_EQ(ids[t * K + i], order[i]) << "token " << t;
        const double p = std::exp(double(l[order[i]]));
        const double want = mode == 0 ? p / z : p / zk;  // renormalized == softmax over top-k
        EXPECT_NEAR(w[t * K + i], want, 1e-6);
      }
    }
    EXPECT_EQ(ids[5 * K], 1);
    EXPECT_EQ(ids[5 * K + 1], 6);
  }
}

TEST(OpsExt, GatherScatterRows) {
  auto be = make_cpu_backend(2);
  const int n = 6, d = 10, m = 5;
  auto src = random_vec(n * d, 40);
  std::vector<int32_t> rows = {4, 0, 4, 2, 5};
  std::vector<float> g(m * d);
  be->gather_rows(src.data(), rows.data(), m, d, g.data());
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < d; ++j) EXPECT_EQ(g[i * d + j], src[rows[i] * d + j]);
  std::vector<float> w = {0.5f, 2.0f, -1.0f, 1.0f, 0.25f};
  std::vector<float> dst(n * d, 1.0f), ref(dst);
  be->scatter_add_rows(g.data(), rows.data(), w.data(), m, d, dst.data());
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < d; ++j) ref[rows[i] * d + j] += w[i] * g[i * d + j];
  for (int i = 0; i < n * d; ++i) EXPECT_FLOAT_EQ(dst[i], ref[i]);
}

}  // namespace
}  // namespace tessera
