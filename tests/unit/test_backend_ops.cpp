// Every op of backend.h run on the cpu backend (2 threads) and on the ref backend (plain
// loops over the scalar references), with random inputs, and compared.
//
// Bit-identical (memcmp) where the cpu kernels are the scalar reference's arithmetic by
// design: get_rows (all types), matmul of Q4_0 (its one-fma-per-block order is shared by every
// level, the tiles, the panels and the R8 kernels), store_kv, attention over an fp16 cache
// (both of llama.cpp's orders), SwiGLU, GELU, and the element-wise ops (the same libm calls on
// the same values). With TESSERA_SIMD=scalar every matmul is bit-identical too.
//
// A tolerance where the definition leaves an order of summation free: matmul of the other
// types (the SIMD dots keep 8 or 16 partial sums where the reference keeps one, see
// quants_avx512.cpp), reductions in f32 (rms_norm, layer_norm, the softmax of attention over
// an f32 cache, attention_ext, attention_packed, moe_route's weights, mean pooling).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/quants.h"
#include "backend/ref/ref_backend.h"
#include "core/error.h"
#include "quant/quant.h"
#include "random_data.h"

namespace tessera {
namespace {

using quant::fp32_to_bf16;
using quant::fp32_to_fp16;

struct Backends {
  std::unique_ptr<Backend> cpu = make_cpu_backend(2);
  std::unique_ptr<Backend> ref = make_ref_backend();
};

// got == want bit for bit, element by element; names the first difference.
::testing::AssertionResult same_bits(const float* got, const float* want, size_t n) {
  size_t bad = 0, first = n;
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(got + i, want + i, sizeof(float)) != 0 && bad++ == 0) first = i;
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << n << " differ; first at " << first
                                       << ": cpu " << got[first] << " ref " << want[first];
}
::testing::AssertionResult same_bits(const std::vector<float>& got,
                                     const std::vector<float>& want) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "sizes differ";
  return same_bits(got.data(), want.data(), got.size());
}

// |got[i] - want[i]| <= tol[i] for every i; names the worst element.
::testing::AssertionResult within(const std::vector<float>& got, const std::vector<float>& want,
                                  const std::vector<double>& tol) {
  size_t bad = 0, worst = 0;
  double worst_ratio = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(double{got[i]} - want[i]);
    if (!(err <= tol[i])) {
      ++bad;
      const double r = err / tol[i];
      if (!(r <= worst_ratio)) worst_ratio = r, worst = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << want.size() << " out of tolerance; worst at " << worst << ": cpu "
         << got[worst] << " ref " << want[worst] << " tol " << tol[worst];
}
// |got - want| <= rel * |want| + abs.
::testing::AssertionResult within(const std::vector<float>& got, const std::vector<float>& want,
                                  double rel, double abs) {
  std::vector<double> tol(want.size());
  for (size_t i = 0; i < want.size(); ++i) tol[i] = rel * std::fabs(want[i]) + abs;
  return within(got, want, tol);
}

// ------------------------------------------------------------------ weights

constexpr DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                                  DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K,
                                  DType::Q4_K, DType::Q5_K, DType::Q6_K};

bool has_ref_quantizer(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q4_0 ||
         t == DType::Q4_1 || t == DType::Q5_0 || t == DType::Q5_1 || t == DType::Q8_0;
}

// A [rows, cols] matrix of type t: quant::quantize_row of random floats, or for the k-quants
// (no reference quantizer) random bytes whose fp16 scale fields are finite, 1e-3..1 in size.
std::vector<uint8_t> random_matrix(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  const size_t rb = row_size(t, cols);
  std::vector<uint8_t> m(rb * rows);
  std::mt19937 rng(seed);
  if (has_ref_quantizer(t)) {
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<float> x = random_vec(cols, seed * 131 + r, -1.0f, 1.0f);
      quant::quantize_row(t, x.data(), m.data() + r * rb, cols);
    }
    return m;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : m) b = static_cast<uint8_t>(byte(rng));
  const std::vector<int> fields = fp16_scale_offsets(t);
  if (fields.empty()) ADD_FAILURE() << "no random matrix for " << dtype_name(t);
  std::uniform_real_distribution<float> lg(std::log(1e-3f), 0.0f);
  const size_t bs = dtype_info(t).type_size;
  for (size_t off = 0; off < m.size(); off += bs)
    for (int f : fields) {
      const uint16_t h = fp32_to_fp16((byte(rng) & 1 ? -1.0f : 1.0f) * std::exp(lg(rng)));
      std::memcpy(m.data() + off + f, &h, 2);
    }
  return m;
}

Tensor matrix_tensor(DType t, int64_t rows, int64_t cols, const std::vector<uint8_t>& data) {
  Tensor w;
  w.type = t;
  w.ne[0] = cols;
  w.ne[1] = rows;
  w.data = data.data();
  return w;
}

// Per output: 1e-5 of the sum of |w_i x_i| over the dequantized weight row and the
// activation row as the ref quantized it (the bound the SIMD dot tests use), so the
// tolerance tracks cancellation rather than the size of the result.
std::vector<double> matmul_tolerance(const Tensor& w, const float* x, int n) {
  const int64_t cols = w.cols(), rows = w.rows();
  const DType vt = quant::vec_dot_type(w.type);
  std::vector<float> wd(rows * cols), xd(n * cols);
  for (int64_t r = 0; r < rows; ++r) quant::dequantize_row(w.type, w.row(r), &wd[r * cols], cols);
  std::vector<uint8_t> q(row_size(vt, cols));
  for (int t = 0; t < n; ++t) {
    quant::quantize_row(vt, x + t * cols, q.data(), cols);
    quant::dequantize_row(vt, q.data(), &xd[t * cols], cols);
  }
  std::vector<double> tol(size_t(n) * rows);
  for (int t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double mag = 0.0;
      for (int64_t c = 0; c < cols; ++c)
        mag += std::fabs(double{wd[r * cols + c]} * xd[t * cols + c]);
      tol[t * rows + r] = 1e-5 * mag + 1e-30;
    }
  return tol;
}

// Q4_0's dot is one fma per block on the block's exact integer sum at every level and in
// every tile, panel and R8 kernel; under TESSERA_SIMD=scalar every type runs the reference.
bool matmul_bit_exact(DType t) {
  return plain_type(t) == DType::Q4_0 || std::strcmp(cpu::simd_level(), "scalar") == 0;
}

// cpu (weights wc, possibly repacked) against ref (the plain weights wr) for n tokens.
void check_matmul(Backends& be, const Tensor& wc, const Tensor& wr, int n, bool with_bias,
                  uint32_t seed) {
  const int64_t cols = wr.cols(), rows = wr.rows();
  SCOPED_TRACE(std::string(dtype_name(wc.type)) + " rows=" + std::to_string(rows) + " cols=" +
               std::to_string(cols) + " n=" + std::to_string(n) + (with_bias ? " bias" : ""));
  const std::vector<float> x = random_vec(n * cols, seed, -1.0f, 1.0f);
  std::vector<float> bias_v = random_vec(rows, seed + 1);
  Tensor bias;
  bias.ne[0] = rows;
  bias.data = bias_v.data();
  std::vector<float> yc(n * rows, NAN), yr(n * rows, NAN);
  be.cpu->matmul(wc, x.data(), yc.data(), n, with_bias ? &bias : nullptr);
  be.ref->matmul(wr, x.data(), yr.data(), n, with_bias ? &bias : nullptr);
  if (matmul_bit_exact(wc.type))
    EXPECT_TRUE(same_bits(yc, yr));
  else
    EXPECT_TRUE(within(yc, yr, matmul_tolerance(wr, x.data(), n)));
}

// Token counts: 1-3 (GEMV; float weights row by row), 4-7 (4 x 4 tiles, partial), 8+ (the
// panels, 16 tokens each, partial last panel) and uneven splits over the 2 threads.
constexpr int kTokenCounts[] = {1, 2, 3, 4, 5, 7, 8, 16, 17, 33, 64, 70};

int64_t test_cols(DType t, int variant) {
  const int64_t bs = dtype_info(t).block_size;
  if (bs == 1) return variant == 0 ? 67 : 256;  // odd, and a multiple of every vector width
  if (bs == 32) return variant == 0 ? 96 : 320;
  return variant == 0 ? 256 : 512;
}

TEST(BackendOps, MatmulEveryWeightType) {
  Backends be;
  uint32_t seed = 1;
  for (DType t : kWeightTypes) {
    for (int variant = 0; variant < 2; ++variant) {
      const int64_t cols = test_cols(t, variant);
      const int64_t rows = variant == 0 ? 37 : 24;  // partial tiles and panels of rows; whole ones
      const std::vector<uint8_t> data = random_matrix(t, rows, cols, seed++);
      const Tensor w = matrix_tensor(t, rows, cols, data);
      for (int n : kTokenCounts) check_matmul(be, w, w, n, (n + variant) % 2 == 1, seed++);
    }
  }
}

// A stack of experts (ne[2]) is rows() = ne[1] * ne[2] weight rows; the decoder takes one
// expert as the [ne[1], cols] slice at its byte offset. Both backends read both the same way.
TEST(BackendOps, MatmulExpertStack) {
  Backends be;
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::F16}) {
    const int64_t cols = test_cols(t, 1), rows = 16, n_expert = 3;
    const std::vector<uint8_t> data = random_matrix(t, rows * n_expert, cols, 77);
    Tensor stack = matrix_tensor(t, rows, cols, data);
    stack.ne[2] = n_expert;
    for (int n : {1, 5, 17}) check_matmul(be, stack, stack, n, false, 78);
    Tensor one = matrix_tensor(t, rows, cols, data);
    one.data = data.data() + 2 * rows * row_size(t, cols);
    for (int n : {1, 5, 17}) check_matmul(be, one, one, n, true, 79);
  }
}

// The cpu backend's row-interleaved layouts against the ref backend on the plain matrix.
TEST(BackendOps, MatmulAndGetRowsRepackedR8) {
  Backends be;
  bool any = false;
  for (DType t : {DType::Q4_0, DType::Q8_0}) {
    if (!cpu::can_repack(t)) continue;
    any = true;
    for (int64_t rows : {8, 64}) {
      const int64_t cols = test_cols(t, 1);
      const std::vector<uint8_t> plain = random_matrix(t, rows, cols, 90 + rows);
      std::vector<uint8_t> packed = plain;
      cpu::repack_rows(t, packed.data(), rows, cols);
      const Tensor wr = matrix_tensor(t, rows, cols, plain);
      const Tensor wc = matrix_tensor(cpu::repacked_type(t), rows, cols, packed);
      for (int n : kTokenCounts) check_matmul(be, wc, wr, n, n % 2 == 0, 100 + n);
      std::vector<int32_t> ids(rows + 3);
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 5 + 3) % rows);
      std::vector<float> gc(ids.size() * cols), gr(ids.size() * cols);
      be.cpu->get_rows(wc, ids.data(), static_cast<int>(ids.size()), gc.data());
      be.ref->get_rows(wr, ids.data(), static_cast<int>(ids.size()), gr.data());
      EXPECT_TRUE(same_bits(gc, gr)) << dtype_name(wc.type);
    }
  }
  if (!any) GTEST_SKIP() << "no R8 kernels at this SIMD level (" << cpu::simd_level() << ")";
}

TEST(BackendOps, RefRefusesRepackedWeights) {
  Backends be;
  const std::vector<uint8_t> data = random_matrix(DType::Q4_0, 8, 64, 5);
  const Tensor w = matrix_tensor(DType::Q4_0_R8, 8, 64, data);
  std::vector<float> x(64, 1.0f), y(8);
  const int32_t id = 0;
  EXPECT_THROW(be.ref->matmul(w, x.data(), y.data(), 1, nullptr), Error);
  EXPECT_THROW(be.ref->get_rows(w, &id, 1, y.data()), Error);
  EXPECT_EQ(be.ref->weight_layout(matrix_tensor(DType::Q4_0, 8, 64, data)), DType::Q4_0);
  EXPECT_STREQ(be.ref->name(), "ref");
}

TEST(BackendOps, GetRowsEveryType) {
  Backends be;
  for (DType t : kWeightTypes) {
    const int64_t cols = test_cols(t, 0), rows = 19;
    const std::vector<uint8_t> data = random_matrix(t, rows, cols, 200);
    const Tensor w = matrix_tensor(t, rows, cols, data);
    for (int n : {1, 6, 40}) {
      std::vector<int32_t> ids(n);
      for (int i = 0; i < n; ++i) ids[i] = (i * 7 + 3) % rows;  // repeats once n > rows
      std::vector<float> gc(n * cols, NAN), gr(n * cols, NAN);
      be.cpu->get_rows(w, ids.data(), n, gc.data());
      be.ref->get_rows(w, ids.data(), n, gr.data());
      EXPECT_TRUE(same_bits(gc, gr)) << dtype_name(t) << " n=" << n;
    }
  }
}

// ------------------------------------------------------------------ element-wise ops

constexpr int kDims[] = {1, 7, 15, 16, 17, 100, 300};

TEST(BackendOps, SiluMulGeluMulGelu) {
  Backends be;
  for (int n : {1, 3, 9}) {
    for (int d : kDims) {
      SCOPED_TRACE("n=" + std::to_string(n) + " d=" + std::to_string(d));
      const std::vector<float> g = random_vec(n * d, n * 1000 + d, -8.0f, 8.0f);
      const std::vector<float> u = random_vec(n * d, n * 1000 + d + 1);
      std::vector<float> c = g, r = g;
      be.cpu->silu_mul(c.data(), u.data(), n, d);
      be.ref->silu_mul(r.data(), u.data(), n, d);
      EXPECT_TRUE(same_bits(c, r)) << "silu_mul";
      c = g, r = g;
      be.cpu->gelu_mul(c.data(), u.data(), n, d);
      be.ref->gelu_mul(r.data(), u.data(), n, d);
      EXPECT_TRUE(same_bits(c, r)) << "gelu_mul";
      c = g, r = g;
      be.cpu->gelu(c.data(), n, d);
      be.ref->gelu(r.data(), n, d);
      EXPECT_TRUE(same_bits(c, r)) << "gelu";
    }
  }
}

TEST(BackendOps, AddScaleSoftcapAddScaledZero) {
  Backends be;
  for (int n : {1, 4, 33}) {
    for (int d : kDims) {
      SCOPED_TRACE("n=" + std::to_string(n) + " d=" + std::to_string(d));
      const std::vector<float> x = random_vec(n * d, 7 * n + d, -60.0f, 60.0f);
      const std::vector<float> y = random_vec(n * d, 7 * n + d + 1);
      const std::vector<float> w = random_vec(n, 7 * n + d + 2, -4.0f, 4.0f);
      std::vector<float> c = x, r = x;
      be.cpu->add(c.data(), y.data(), n, d);
      be.ref->add(r.data(), y.data(), n, d);
      EXPECT_TRUE(same_bits(c, r)) << "add";
      c = x, r = x;
      be.cpu->scale(c.data(), n, d, 0.37f);
      be.ref->scale(r.data(), n, d, 0.37f);
      EXPECT_TRUE(same_bits(c, r)) << "scale";
      c = x, r = x;
      be.cpu->softcap(c.data(), n, d, 30.0f);
      be.ref->softcap(r.data(), n, d, 30.0f);
      EXPECT_TRUE(same_bits(c, r)) << "softcap";
      for (bool sig : {false, true}) {
        c = x, r = x;
        be.cpu->add_scaled(c.data(), y.data(), w.data(), n, d, sig);
        be.ref->add_scaled(r.data(), y.data(), w.data(), n, d, sig);
        EXPECT_TRUE(same_bits(c, r)) << "add_scaled sigmoid=" << sig;
      }
      c = x, r = x;
      be.cpu->zero(c.data(), n, d);
      be.ref->zero(r.data(), n, d);
      EXPECT_TRUE(same_bits(c, r)) << "zero";
      EXPECT_TRUE(same_bits(c, std::vector<float>(n * d, 0.0f))) << "zero";
    }
  }
}

// rms_norm and layer_norm sum a row: the order of that sum is free (tolerance in ulps of
// the normalized output, which is O(1) times the weight).
TEST(BackendOps, RmsNormAndLayerNorm) {
  Backends be;
  for (int n : {1, 5, 17}) {
    for (int d : {1, 7, 16, 100, 300, 2048}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " d=" + std::to_string(d));
      const std::vector<float> x = random_vec(n * d, 3 * n + d, -3.0f, 5.0f);
      const std::vector<float> w = random_vec(d, d, 0.5f, 1.5f);
      const std::vector<float> bias = random_vec(d, d + 1);
      std::vector<float> c(n * d), r(n * d);
      be.cpu->rms_norm(x.data(), w.data(), c.data(), n, d, 1e-6f);
      be.ref->rms_norm(x.data(), w.data(), r.data(), n, d, 1e-6f);
      EXPECT_TRUE(within(c, r, 4e-7, 1e-7)) << "rms_norm";
      c = x;  // in place (y aliases x)
      be.cpu->rms_norm(c.data(), w.data(), c.data(), n, d, 1e-6f);
      EXPECT_TRUE(within(c, r, 4e-7, 1e-7)) << "rms_norm in place";
      for (bool with_bias : {false, true}) {
        const float* b = with_bias ? bias.data() : nullptr;
        be.cpu->layer_norm(x.data(), w.data(), b, c.data(), n, d, 1e-5f);
        be.ref->layer_norm(x.data(), w.data(), b, r.data(), n, d, 1e-5f);
        EXPECT_TRUE(within(c, r, 2e-6, 2e-6)) << "layer_norm bias=" << with_bias;
      }
    }
  }
}

// RoPE is element-wise given ggml's running product for the angles: bit-identical.
TEST(BackendOps, Rope) {
  Backends be;
  const std::vector<float> ff = random_vec(64, 9, 1.0f, 8.0f);
  struct Case {
    const char* name;
    int head_dim, n_rot;
    bool neox;
    float ext_factor, freq_scale;
    bool factors;
  };
  const Case cases[] = {
      {"normal", 64, 64, false, 0.0f, 1.0f, false},
      {"neox", 128, 128, true, 0.0f, 1.0f, false},
      {"partial neox", 80, 32, true, 0.0f, 1.0f, false},
      {"partial normal", 96, 48, false, 0.0f, 0.25f, false},
      {"yarn", 64, 64, true, 1.0f, 0.25f, false},
      {"freq_factors", 128, 128, true, 0.0f, 1.0f, true},
  };
  for (const Case& k : cases) {
    for (int n : {1, 3, 20}) {
      SCOPED_TRACE(std::string(k.name) + " n=" + std::to_string(n));
      const int n_head = 3;
      RopeParams p;
      p.n_rot = k.n_rot;
      p.neox = k.neox;
      p.freq_base = k.factors ? 500000.0f : 10000.0f;
      p.freq_scale = k.freq_scale;
      p.ext_factor = k.ext_factor;
      p.attn_factor = k.ext_factor != 0.0f ? 0.9f : 1.0f;
      p.n_ctx_orig = 4096;
      p.freq_factors = k.factors ? ff.data() : nullptr;
      std::vector<int32_t> pos(n);
      for (int i = 0; i < n; ++i) pos[i] = i * 37 + (n > 1 ? 1000 : 0);
      const std::vector<float> x = random_vec(n * n_head * k.head_dim, n + k.head_dim);
      std::vector<float> c = x, r = x;
      be.cpu->rope(c.data(), n, n_head, k.head_dim, pos.data(), p);
      be.ref->rope(r.data(), n, n_head, k.head_dim, pos.data(), p);
      EXPECT_TRUE(same_bits(c, r));
    }
  }
}

// ------------------------------------------------------------------ attention

// A paged KV cache holding several sequences (lengths `lens`) whose blocks are scattered in
// a shuffled order, and a batch of the last `n_query[s]` tokens of each sequence.
struct AttnSetup {
  int n_head, n_head_kv, head_dim, block_size;
  std::vector<int> lens, n_query;
  bool tile_long_prompts;  // prompt_tiled = 1 for the rows of sequences of >= 64 tokens
  DType cache_type;

  int kv_dim() const { return n_head_kv * head_dim; }
};

struct AttnCase {
  std::vector<std::vector<int32_t>> tables;
  std::vector<const int32_t*> table_ptrs;
  std::vector<int32_t> pos, seq_of, slots;
  std::vector<uint8_t> tiled;
  int n_slots = 0;
  int block_size = 16;
  AttentionBatch batch(bool with_tiles) const {
    AttentionBatch b;
    b.n_tokens = static_cast<int>(pos.size());
    b.pos = pos.data();
    b.seq_of = seq_of.data();
    b.block_tables = table_ptrs.data();
    b.slots = slots.data();
    b.block_size = block_size;
    b.prompt_tiled = with_tiles ? tiled.data() : nullptr;
    return b;
  }
};

// Block tables over a shuffled pool, and the batch of every token (to fill the cache) or of
// the queried ones only.
AttnCase make_case(const AttnSetup& s, bool all_tokens, uint32_t seed) {
  AttnCase c;
  c.block_size = s.block_size;
  int n_blocks = 0;
  for (int len : s.lens) n_blocks += (len + s.block_size - 1) / s.block_size;
  std::vector<int32_t> pool(n_blocks + 3);  // a few blocks no sequence uses
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), std::mt19937(seed));
  int next = 0;
  for (size_t q = 0; q < s.lens.size(); ++q) {
    const int nb = (s.lens[q] + s.block_size - 1) / s.block_size;
    c.tables.emplace_back(pool.begin() + next, pool.begin() + next + nb);
    next += nb;
  }
  for (auto& t : c.tables) c.table_ptrs.push_back(t.data());
  c.n_slots = static_cast<int>(pool.size()) * s.block_size;
  for (size_t q = 0; q < s.lens.size(); ++q) {
    const int first = all_tokens ? 0 : s.lens[q] - s.n_query[q];
    for (int p = first; p < s.lens[q]; ++p) {
      c.pos.push_back(p);
      c.seq_of.push_back(static_cast<int32_t>(q));
      c.slots.push_back(c.tables[q][p / s.block_size] * s.block_size + p % s.block_size);
      c.tiled.push_back(s.tile_long_prompts && s.lens[q] >= kTiledPromptMin);
    }
  }
  return c;
}

struct Cache {
  std::vector<uint8_t> k, v;
  KVLayer layer;
  Cache(DType t, int64_t n) : k(n * (t == DType::F16 ? 2 : 4)), v(k.size()) {
    layer.type = t;
    layer.k = k.data();
    layer.v = v.data();
  }
};

// Fills a cache on each backend with store_kv (compared byte for byte), then runs attention
// (options == nullptr) or attention_ext on each over the same cache and compares.
void check_attention(Backends& be, const AttnSetup& s, const AttentionOptions* opts,
                     uint32_t seed) {
  const AttnCase all = make_case(s, true, seed), query = make_case(s, false, seed);
  const int kvd = s.kv_dim(), n_all = static_cast<int>(all.pos.size());
  const std::vector<float> k = random_vec(int64_t{n_all} * kvd, seed + 1);
  const std::vector<float> v = random_vec(int64_t{n_all} * kvd, seed + 2);
  Cache cc(s.cache_type, int64_t{all.n_slots} * kvd), cr(s.cache_type, int64_t{all.n_slots} * kvd);
  be.cpu->store_kv(cc.layer, k.data(), v.data(), kvd, all.batch(false));
  be.ref->store_kv(cr.layer, k.data(), v.data(), kvd, all.batch(false));
  ASSERT_EQ(cc.k, cr.k) << "store_kv keys";
  ASSERT_EQ(cc.v, cr.v) << "store_kv values";

  const int n = static_cast<int>(query.pos.size());
  const int q_dim = s.n_head * s.head_dim;
  // Scores of a few units, so the softmax is neither flat nor one-hot.
  const std::vector<float> q = random_vec(int64_t{n} * q_dim, seed + 3, -1.5f, 1.5f);
  const AttentionBatch b = query.batch(s.tile_long_prompts);
  std::vector<float> oc(int64_t{n} * q_dim, NAN), orf(int64_t{n} * q_dim, NAN);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  if (opts == nullptr) {
    be.cpu->attention(q.data(), cc.layer, oc.data(), s.n_head, s.n_head_kv, s.head_dim, scale, b);
    be.ref->attention(q.data(), cr.layer, orf.data(), s.n_head, s.n_head_kv, s.head_dim, scale, b);
  } else {
    be.cpu->attention_ext(q.data(), cc.layer, oc.data(), s.n_head, s.n_head_kv, s.head_dim, *opts,
                          b);
    be.ref->attention_ext(q.data(), cr.layer, orf.data(), s.n_head, s.n_head_kv, s.head_dim, *opts,
                          b);
  }
  // With a window alone, the rows not prompt_tiled take the flash order over the window.
  const bool window_flash =
      opts != nullptr && ext_takes_flash_order(cc.layer, *opts) && !s.tile_long_prompts;
  if (s.cache_type == DType::F16 && (opts == nullptr || window_flash)) {
    // llama.cpp's two flash attention orders (over the window's keys where there is one): the
    // cpu kernels are the scalar ones, bit for bit.
    EXPECT_TRUE(same_bits(oc, orf));
  } else if (s.cache_type == DType::F32) {
    // Softmax attention whose f32 sums may be taken in another order: the outputs are
    // convex combinations of values in [-2, 2], so 1e-5 absolute is ~60 ulps of the largest.
    EXPECT_TRUE(within(oc, orf, 0.0, 1e-5));
  } else {
    // The same over an fp16 cache, whose weights are rounded to fp16: a score summed in
    // another order (the cpu's q·k is SIMD) can round a weight w to its fp16 neighbour, a
    // change of at most 2^-11 w. The weights sum to 1 and |v| <= 2: at most 2^-10 in all.
    // Such flips need a weight within a few f32 ulps of an fp16 rounding boundary: rare, so
    // nearly every output still agrees to 1e-5.
    EXPECT_TRUE(within(oc, orf, 0.0, 1.0 / 1024));
    size_t moved = 0;
    for (size_t i = 0; i < oc.size(); ++i) moved += std::fabs(oc[i] - orf[i]) > 1e-5;
    EXPECT_LE(moved, oc.size() / 100) << moved << " of " << oc.size() << " outputs moved";
  }
}

std::string describe(const AttnSetup& s) {
  std::string r = std::string(dtype_name(s.cache_type)) + " heads " + std::to_string(s.n_head) +
                  "/" + std::to_string(s.n_head_kv) + " d=" + std::to_string(s.head_dim) +
                  " bs=" + std::to_string(s.block_size) + (s.tile_long_prompts ? " tiled" : "") +
                  " lens";
  for (size_t i = 0; i < s.lens.size(); ++i)
    r += " " + std::to_string(s.lens[i]) + "(" + std::to_string(s.n_query[i]) + "q)";
  return r;
}

std::vector<AttnSetup> attention_setups(DType cache_type) {
  std::vector<AttnSetup> r;
  // (n_head, n_head_kv, head_dim): MHA, GQA 2 and 4, MQA; head dims below, at and past 64
  // (the fp16 dot's 64-element chunks and its tail in double).
  const int heads[][3] = {{4, 4, 64}, {4, 2, 80}, {8, 2, 128}, {6, 1, 40}};
  for (const auto& h : heads) {
    for (bool tiled : {false, true}) {
      AttnSetup s;
      s.n_head = h[0], s.n_head_kv = h[1], s.head_dim = h[2];
      s.block_size = h[2] == 80 ? 32 : 16;
      s.cache_type = cache_type;
      s.tile_long_prompts = tiled;
      // Decode steps (1 query of a long context), short prompts, and prompts of >= 64 tokens
      // (whole, or their tail as a later chunk), several sequences in one batch.
      s.lens = {1, 37, 70, 130, 5};
      s.n_query = {1, 1, 70, 20, 5};
      r.push_back(s);
    }
  }
  return r;
}

TEST(BackendOps, AttentionF16Cache) {
  Backends be;
  uint32_t seed = 500;
  for (const AttnSetup& s : attention_setups(DType::F16)) {
    SCOPED_TRACE(describe(s));
    check_attention(be, s, nullptr, seed += 10);
  }
}

TEST(BackendOps, AttentionF32Cache) {
  Backends be;
  uint32_t seed = 600;
  for (const AttnSetup& s : attention_setups(DType::F32)) {
    SCOPED_TRACE(describe(s));
    check_attention(be, s, nullptr, seed += 10);
  }
}

TEST(BackendOps, AttentionExtOptions) {
  Backends be;
  uint32_t seed = 700;
  AttentionOptions opts[6];
  opts[0].n_window = 5;
  // Rows inside the window (a 70-token prompt) and past it (a chunk at 110..129).
  opts[5].n_window = 100;
  opts[1].n_window = 40;
  opts[1].softcap = 2.0f;
  opts[2].softcap = 1.5f;
  opts[3].alibi_max_bias = 8.0f;
  opts[3].n_window = 64;
  // A tensor-parallel rank's slice of the heads: the slopes of heads 3.. of n_head + 4.
  opts[4].alibi_max_bias = 8.0f;
  opts[4].alibi_head0 = 3;
  for (DType t : {DType::F16, DType::F32}) {
    for (const AttnSetup& s : attention_setups(t)) {
      for (AttentionOptions o : opts) {
        // Only a window alone over an fp16 cache mixes two orders by prompt_tiled.
        if (s.tile_long_prompts && (t != DType::F16 || o.softcap > 0.0f || o.alibi_max_bias > 0.0f))
          continue;
        o.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
        if (o.alibi_head0 > 0) o.alibi_n_head = s.n_head + 4;
        SCOPED_TRACE(describe(s) + " window " + std::to_string(o.n_window) + " softcap " +
                     std::to_string(o.softcap) + " alibi " + std::to_string(o.alibi_max_bias) +
                     " heads from " + std::to_string(o.alibi_head0));
        check_attention(be, s, &o, seed += 10);
      }
    }
  }
}

TEST(BackendOps, AttentionPacked) {
  Backends be;
  struct Case {
    int n_head, n_head_kv, head_dim;
    std::vector<int32_t> seq_start;
  };
  const Case cases[] = {
      {4, 4, 64, {0, 1}},
      {4, 2, 40, {0, 7, 7, 20, 21}},  // an empty sequence, a one-token one
      {6, 3, 33, {0, 50, 64}},
  };
  uint32_t seed = 800;
  for (const Case& k : cases) {
    const int n_seqs = static_cast<int>(k.seq_start.size()) - 1, n = k.seq_start.back();
    const int q_dim = k.n_head * k.head_dim, kv_dim = k.n_head_kv * k.head_dim;
    const std::vector<float> q = random_vec(n * q_dim, ++seed), kk = random_vec(n * kv_dim, ++seed),
                             v = random_vec(n * kv_dim, ++seed);
    std::vector<float> oc(n * q_dim, NAN), orf(n * q_dim, NAN);
    const float scale = 1.0f / std::sqrt(static_cast<float>(k.head_dim));
    be.cpu->attention_packed(q.data(), kk.data(), v.data(), oc.data(), k.n_head, k.n_head_kv,
                             k.head_dim, scale, k.seq_start.data(), n_seqs);
    be.ref->attention_packed(q.data(), kk.data(), v.data(), orf.data(), k.n_head, k.n_head_kv,
                             k.head_dim, scale, k.seq_start.data(), n_seqs);
    // Exact f32 attention; sums in f32 on the cpu, in double on the ref: outputs are convex
    // combinations of values in [-2, 2].
    EXPECT_TRUE(within(oc, orf, 0.0, 1e-5)) << "n_head " << k.n_head << " d " << k.head_dim;
  }
}

// ------------------------------------------------------------------ mixture of experts

TEST(BackendOps, MoeRoute) {
  Backends be;
  for (int n_expert : {4, 8, 60}) {
    for (int k : {1, 2, 4}) {
      if (k > n_expert) continue;
      for (int mode = 0; mode < 3; ++mode) {
        MoeRouting o;
        o.norm_topk = mode == 1;
        o.softmax_after_topk = mode == 2;
        const int n = 13;
        std::vector<float> logits = random_vec(n * n_expert, n_expert * 10 + k, -3.0f, 3.0f);
        // Many ties: logits on a grid of halves, and one row all equal.
        for (float& l : logits) l = std::round(l * 2.0f) / 2.0f;
        std::fill(logits.begin(), logits.begin() + n_expert, 0.25f);
        std::vector<int32_t> ic(n * k, -1), ir(n * k, -2);
        std::vector<float> wc(n * k, NAN), wr(n * k, NAN);
        be.cpu->moe_route(logits.data(), n, n_expert, k, o, ic.data(), wc.data());
        be.ref->moe_route(logits.data(), n, n_expert, k, o, ir.data(), wr.data());
        SCOPED_TRACE("experts " + std::to_string(n_expert) + " k " + std::to_string(k) + " mode " +
                     std::to_string(mode));
        EXPECT_EQ(ic, ir);
        // Softmax sums in f32 on the cpu, in double on the ref; weights are in (0, 1].
        EXPECT_TRUE(within(wc, wr, 2e-6, 1e-7));
      }
    }
  }
}

TEST(BackendOps, GatherAndScatterRows) {
  Backends be;
  for (int d : {1, 17, 64}) {
    const int n_src = 9, m = 14;
    const std::vector<float> src = random_vec(n_src * d, d), w = random_vec(m, d + 1);
    std::vector<int32_t> rows(m);
    for (int i = 0; i < m; ++i) rows[i] = (i * 4) % n_src;  // rows repeat
    std::vector<float> c(m * d), r(m * d);
    be.cpu->gather_rows(src.data(), rows.data(), m, d, c.data());
    be.ref->gather_rows(src.data(), rows.data(), m, d, r.data());
    EXPECT_TRUE(same_bits(c, r)) << "gather d=" << d;
    // Repeated destinations add in order: the same float sums in both.
    const std::vector<float> ys = random_vec(m * d, d + 2);
    std::vector<float> dc = random_vec(n_src * d, d + 3), dr = dc;
    be.cpu->scatter_add_rows(ys.data(), rows.data(), w.data(), m, d, dc.data());
    be.ref->scatter_add_rows(ys.data(), rows.data(), w.data(), m, d, dr.data());
    EXPECT_TRUE(same_bits(dc, dr)) << "scatter d=" << d;
  }
}

TEST(BackendOps, PoolRows) {
  Backends be;
  const std::vector<int32_t> seq_start = {0, 3, 3, 4, 20, 51};  // one empty, one single row
  const int n_seqs = static_cast<int>(seq_start.size()) - 1;
  for (int d : {1, 17, 384}) {
    const std::vector<float> x = random_vec(seq_start.back() * d, d);
    for (RowPool kind : {RowPool::MEAN, RowPool::FIRST, RowPool::LAST}) {
      std::vector<float> c(n_seqs * d, NAN), r(n_seqs * d, NAN);
      be.cpu->pool_rows(x.data(), d, seq_start.data(), n_seqs, kind, c.data());
      be.ref->pool_rows(x.data(), d, seq_start.data(), n_seqs, kind, r.data());
      if (kind == RowPool::MEAN)  // f32 sum on the cpu, double on the ref; |mean| <= 2
        EXPECT_TRUE(within(c, r, 0.0, 2e-6)) << "mean d=" << d;
      else
        EXPECT_TRUE(same_bits(c, r)) << "kind " << static_cast<int>(kind) << " d=" << d;
    }
  }
}

}  // namespace
}  // namespace tessera
