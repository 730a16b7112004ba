// The reference backend (ref_backend.h): one plain loop per op, in the order its
// definition in backend.h gives. Where an op's rounding is fixed by its definition, the
// arithmetic is the scalar reference's (quant/quant.h for rows, backend/cpu/quants.h's
// scalar level for the attention orders and activations); everything else is ordinary
// float code.
#include "backend/ref/ref_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <numeric>
#include <string>
#include <vector>

#include "backend/cpu/quants.h"
#include "core/error.h"
#include "quant/quant.h"

namespace tessera {

std::unique_ptr<Backend> make_ref_backend() {
  return std::make_unique<ref::RefBackend>();
}

namespace ref {

namespace {

void require_plain(const Tensor& w, const char* op) {
  if (is_repacked(w.type))
    throw Error(std::string(op) + ": the ref backend has no kernels for " + dtype_name(w.type));
}

// The slot of key/value position j of a sequence with block table `table`.
int64_t slot_of(const int32_t* table, int block_size, int j) {
  return static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size;
}

float round_fp16(float x) {
  return quant::fp16_to_fp32(quant::fp32_to_fp16(x));
}

}  // namespace

// ---------------------------------------------------------------- buffers

float* RefBackend::alloc(int64_t n_floats) {
  const size_t bytes = (static_cast<size_t>(n_floats) * sizeof(float) + 63) & ~size_t{63};
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (!p) throw std::bad_alloc();
  return static_cast<float*>(p);
}

void RefBackend::free_buffer(float* p) {
  std::free(p);
}

void RefBackend::zero(float* x, int n, int d) {
  for (int64_t i = 0; i < int64_t{n} * d; ++i) x[i] = 0.0f;
}

// ---------------------------------------------------------------- weights

void RefBackend::get_rows(const Tensor& emb, const int32_t* ids, int n, float* out) {
  require_plain(emb, "get_rows");
  const int64_t d = emb.cols();
  for (int i = 0; i < n; ++i) quant::dequantize_row(emb.type, emb.row(ids[i]), out + i * d, d);
}

void RefBackend::matmul(const Tensor& w, const float* x, float* y, int n, const Tensor* bias) {
  require_plain(w, "matmul");
  // Every row of w is a weight row: a tensor with ne[2] (a stack of experts) is rows() =
  // ne[1] * ne[2] * ne[3] rows of cols() elements, as the cpu backend reads it.
  const int64_t cols = w.cols();
  const int64_t rows = w.rows();
  const DType vt = quant::vec_dot_type(w.type);
  const float* bias_data = bias ? static_cast<const float*>(bias->data) : nullptr;
  std::vector<uint8_t> xq(row_size(vt, cols));
  for (int t = 0; t < n; ++t) {
    const float* xt = x + int64_t{t} * cols;
    const void* xa = xt;  // the activation row in the vec dot type
    if (vt != DType::F32) {
      quant::quantize_row(vt, xt, xq.data(), cols);
      xa = xq.data();
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float dot = quant::vec_dot(w.type, cols, w.row(r), xa);
      y[t * rows + r] = bias_data ? dot + bias_data[r] : dot;
    }
  }
}

// ---------------------------------------------------------------- norms, rope, activations

void RefBackend::rms_norm(const float* x, const float* weight, float* y, int n, int d, float eps) {
  for (int i = 0; i < n; ++i) {
    const float* xi = x + int64_t{i} * d;
    float* yi = y + int64_t{i} * d;
    // ggml's definition: squares in f32, their sum in double.
    double sum = 0.0;
    for (int j = 0; j < d; ++j) sum += static_cast<double>(xi[j] * xi[j]);
    const float scale = 1.0f / std::sqrt(static_cast<float>(sum / d) + eps);
    for (int j = 0; j < d; ++j) yi[j] = xi[j] * scale * weight[j];
  }
}

void RefBackend::rope(float* x, int n, int n_head, int head_dim, const int32_t* pos,
                      const RopeParams& p) {
  const int n_rot = p.n_rot;
  if (n_rot <= 0 || n_rot % 2 != 0 || n_rot > head_dim) throw Error("rope: bad n_rot");
  const float theta_scale = std::pow(p.freq_base, -2.0f / n_rot);
  // YaRN's correction range [lo, hi] of dimension pairs (ggml_rope_yarn_corr_dims).
  auto corr_dim = [&](float n_rot_beta) {
    return n_rot * std::log(p.n_ctx_orig / (n_rot_beta * 2.0f * static_cast<float>(M_PI))) /
           (2.0f * std::log(p.freq_base));
  };
  float lo = 0.0f, hi = 0.0f;
  if (p.ext_factor != 0.0f) {
    lo = std::max(0.0f, std::floor(corr_dim(p.beta_fast)));
    hi = std::min(static_cast<float>(n_rot - 1), std::ceil(corr_dim(p.beta_slow)));
  }
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < n_head; ++h) {
      float* v = x + (int64_t{t} * n_head + h) * head_dim;
      // theta_i = pos * base^(-2i / n_rot), as ggml: one running product over the pairs.
      float theta = static_cast<float>(pos[t]);
      for (int i0 = 0; i0 < n_rot; i0 += 2) {
        const float ff = p.freq_factors ? p.freq_factors[i0 / 2] : 1.0f;
        const float theta_extrap = theta / ff;
        const float theta_interp = p.freq_scale * theta_extrap;
        float angle = theta_interp;
        float mscale = p.attn_factor;
        if (p.ext_factor != 0.0f) {
          const float y = (i0 / 2 - lo) / std::max(0.001f, hi - lo);
          const float ramp = 1.0f - std::min(1.0f, std::max(0.0f, y));
          const float mix = ramp * p.ext_factor;
          angle = theta_interp * (1 - mix) + theta_extrap * mix;
          mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
        }
        const float c = std::cos(angle) * mscale;
        const float s = std::sin(angle) * mscale;
        theta *= theta_scale;
        // The pair (a, b) rotated by the angle, with the fused multiply-adds of ggml's
        // rotation as GCC builds it for x86.
        const int a = p.neox ? i0 / 2 : i0;
        const int b = p.neox ? i0 / 2 + n_rot / 2 : i0 + 1;
        const float x0 = v[a], x1 = v[b];
        v[a] = std::fma(x0, c, -(x1 * s));
        v[b] = std::fma(x0, s, x1 * c);
      }
    }
  }
}

void RefBackend::silu_mul(float* gate, const float* up, int n, int d) {
  // Row by row: SwiGLU's exp rule (polynomial, then libm for the tail) is per row.
  const cpu::SiluMulFn f = cpu::silu_mul_fn_for("scalar");
  for (int i = 0; i < n; ++i) f(gate + int64_t{i} * d, up + int64_t{i} * d, d);
}

void RefBackend::add(float* x, const float* y, int n, int d) {
  for (int64_t i = 0; i < int64_t{n} * d; ++i) x[i] += y[i];
}

void RefBackend::gelu_mul(float* gate, const float* up, int n, int d) {
  constexpr float kSqrt2OverPi = 0.79788456080286535588f;
  for (int64_t i = 0; i < int64_t{n} * d; ++i) {
    const float x = gate[i];
    const float g = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
    gate[i] = g * up[i];
  }
}

void RefBackend::scale(float* x, int n, int d, float s) {
  for (int64_t i = 0; i < int64_t{n} * d; ++i) x[i] *= s;
}

void RefBackend::softcap(float* x, int n, int d, float cap) {
  for (int64_t i = 0; i < int64_t{n} * d; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void RefBackend::add_scaled(float* x, const float* y, const float* w, int n, int d,
                            bool sigmoid_w) {
  for (int i = 0; i < n; ++i) {
    const float wi = sigmoid_w ? 1.0f / (1.0f + std::exp(-w[i])) : w[i];
    for (int j = 0; j < d; ++j) x[int64_t{i} * d + j] += wi * y[int64_t{i} * d + j];
  }
}

void RefBackend::layer_norm(const float* x, const float* weight, const float* bias, float* y, int n,
                            int d, float eps) {
  for (int i = 0; i < n; ++i) {
    const float* xi = x + int64_t{i} * d;
    float* yi = y + int64_t{i} * d;
    double mean = 0.0;
    for (int j = 0; j < d; ++j) mean += xi[j];
    mean /= d;
    double var = 0.0;
    for (int j = 0; j < d; ++j) var += (xi[j] - mean) * (xi[j] - mean);
    var /= d;
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int j = 0; j < d; ++j) {
      const double v = (xi[j] - mean) * inv * weight[j] + (bias ? bias[j] : 0.0);
      yi[j] = static_cast<float>(v);
    }
  }
}

void RefBackend::gelu(float* x, int n, int d) {
  cpu::gelu_fn_for("scalar")(x, int64_t{n} * d);
}

// ---------------------------------------------------------------- KV cache and attention

void RefBackend::store_kv(const KVLayer& kv, const float* k, const float* v, int kv_dim,
                          const AttentionBatch& b) {
  for (int t = 0; t < b.n_tokens; ++t) {
    const int64_t dst = int64_t{b.slots[t]} * kv_dim;
    for (int c = 0; c < kv_dim; ++c) {
      const float kc = k[int64_t{t} * kv_dim + c], vc = v[int64_t{t} * kv_dim + c];
      if (kv.type == DType::F16) {
        kv.k16()[dst + c] = quant::fp32_to_fp16(kc);
        kv.v16()[dst + c] = quant::fp32_to_fp16(vc);
      } else {
        kv.k32()[dst + c] = kc;
        kv.v32()[dst + c] = vc;
      }
    }
  }
}

void RefBackend::attention(const float* q, const KVLayer& kv, float* out, int n_head, int n_head_kv,
                           int head_dim, float scale, const AttentionBatch& b) {
  if (kv.type == DType::F32) {
    AttentionOptions o;
    o.scale = scale;
    attention_ext(q, kv, out, n_head, n_head_kv, head_dim, o, b);
    return;
  }
  attention_f16(q, kv, out, n_head, n_head_kv, head_dim, scale, 0, b);
}

void RefBackend::attention_f16(const float* q, const KVLayer& kv, float* out, int n_head,
                               int n_head_kv, int head_dim, float scale, int n_window,
                               const AttentionBatch& b) {
  // fp16 cache: llama.cpp's flash attention orders, one (token, query head) at a time.
  const int kv_dim = n_head_kv * head_dim;
  const int group = n_head / n_head_kv;
  const cpu::FlashAttnFn fa = cpu::flash_attn_fn_for("scalar");
  const cpu::FlashAttnTiledFn fa_tiled = cpu::flash_attn_tiled_fn_for("scalar");
  std::vector<uint16_t> q16(head_dim), acc(head_dim);
  for (int t = 0; t < b.n_tokens; ++t) {
    const int p = b.pos[t];
    const int32_t* table = b.block_tables[b.seq_of[t]];
    for (int h = 0; h < n_head; ++h) {
      const int kvh = h / group;
      const float* qh = q + (int64_t{t} * n_head + h) * head_dim;
      float* oh = out + (int64_t{t} * n_head + h) * head_dim;
      // With a window, the rows of long prompts are attention_ext's.
      if (n_window > 0 && b.prompt_tiled != nullptr && b.prompt_tiled[t]) continue;
      const int j0 = n_window > 0 ? std::max(0, p - n_window + 1) : 0;  // the window's first key
      if (b.prompt_tiled != nullptr && b.prompt_tiled[t]) {
        // A row of a long prompt: f32 tiles of 64 keys.
        cpu::TiledAttnArgs a;
        a.q = qh;
        a.n_rows = 1;
        a.pos = &b.pos[t];
        a.nq = 1;
        a.head_dim = head_dim;
        a.k = kv.k16() + int64_t{kvh} * head_dim;
        a.v = kv.v16() + int64_t{kvh} * head_dim;
        a.kv_stride = kv_dim;
        a.block_table = table;
        a.block_size = b.block_size;
        a.scale = scale;
        a.out = oh;
        fa_tiled(a);
        continue;
      }
      // Key by key in position order: online softmax into an fp16 accumulator.
      for (int d = 0; d < head_dim; ++d) q16[d] = quant::fp32_to_fp16(qh[d]);
      std::fill(acc.begin(), acc.end(), uint16_t{0});
      float m = -INFINITY, s = 0.0f;
      for (int j = j0; j <= p; ++j) {
        const int64_t off = slot_of(table, b.block_size, j) * kv_dim + int64_t{kvh} * head_dim;
        fa(q16.data(), 1, head_dim, kv.k16() + off, kv.v16() + off, kv_dim, 1, scale, &m, &s,
           acc.data());
      }
      const float inv = s == 0.0f ? 0.0f : 1.0f / s;
      for (int d = 0; d < head_dim; ++d) oh[d] = quant::fp16_to_fp32(acc[d]) * inv;
    }
  }
}

namespace {

// ALiBi slope of head h (ggml): m0^(h+1) for the first n_head_log2 heads (the largest power
// of two <= n_head), m1^(2(h - n_head_log2) + 1) for the rest.
float alibi_slope(int h, int n_head, float max_bias) {
  const int n_head_log2 = 1 << static_cast<int>(std::floor(std::log2(static_cast<float>(n_head))));
  const float m0 = std::pow(2.0f, -max_bias / n_head_log2);
  const float m1 = std::pow(2.0f, -(max_bias / 2.0f) / n_head_log2);
  return h < n_head_log2 ? std::pow(m0, static_cast<float>(h + 1))
                         : std::pow(m1, static_cast<float>(2 * (h - n_head_log2) + 1));
}

}  // namespace

void RefBackend::attention_ext(const float* q, const KVLayer& kv, float* out, int n_head,
                               int n_head_kv, int head_dim, const AttentionOptions& o,
                               const AttentionBatch& b) {
  // A sliding window alone over an fp16 cache: rows other than those of long prompts go key by
  // key in the flash order over the window's keys (Backend::attention_ext); the softmax
  // below runs only where there are such prompt rows.
  const bool flash = ext_takes_flash_order(kv, o);
  if (flash) {
    attention_f16(q, kv, out, n_head, n_head_kv, head_dim, o.scale, o.n_window, b);
    if (b.prompt_tiled == nullptr ||
        std::none_of(b.prompt_tiled, b.prompt_tiled + b.n_tokens, [](uint8_t x) { return x; }))
      return;
  }
  const int kv_dim = n_head_kv * head_dim;
  const int group = n_head / n_head_kv;
  const bool f16 = kv.type == DType::F16;
  const AlibiHeads alibi = alibi_heads(o, n_head);  // slopes by the model's head index
  std::vector<float> qh(head_dim), scores;
  for (int t = 0; t < b.n_tokens; ++t) {
    if (flash && !b.prompt_tiled[t]) continue;  // done above
    const int p = b.pos[t];
    const int j0 = o.n_window > 0 ? std::max(0, p - o.n_window + 1) : 0;
    const int32_t* table = b.block_tables[b.seq_of[t]];
    scores.assign(p - j0 + 1, 0.0f);
    for (int h = 0; h < n_head; ++h) {
      const int kvh = h / group;
      const float* qraw = q + (int64_t{t} * n_head + h) * head_dim;
      // An fp16 cache rounds q and the softmax weights to fp16 (sums stay f32).
      for (int d = 0; d < head_dim; ++d) qh[d] = f16 ? round_fp16(qraw[d]) : qraw[d];
      const float slope = o.alibi_max_bias > 0.0f
                              ? alibi_slope(alibi.head0 + h, alibi.n_head, o.alibi_max_bias)
                              : 0.0f;
      auto key = [&](int j, int d) {
        const int64_t off = slot_of(table, b.block_size, j) * kv_dim + int64_t{kvh} * head_dim + d;
        return f16 ? quant::fp16_to_fp32(kv.k16()[off]) : kv.k32()[off];
      };
      auto value = [&](int j, int d) {
        const int64_t off = slot_of(table, b.block_size, j) * kv_dim + int64_t{kvh} * head_dim + d;
        return f16 ? quant::fp16_to_fp32(kv.v16()[off]) : kv.v32()[off];
      };
      float mx = -INFINITY;
      for (int j = j0; j <= p; ++j) {
        float sc = 0.0f;
        for (int d = 0; d < head_dim; ++d) sc += qh[d] * key(j, d);
        sc *= o.scale;
        if (o.softcap > 0.0f) sc = o.softcap * std::tanh(sc / o.softcap);
        sc += slope * static_cast<float>(j - p);
        scores[j - j0] = sc;
        mx = std::max(mx, sc);
      }
      // The denominator in double, its inverse rounded once: the weights an fp16 cache
      // rounds are then the cpu backend's.
      double sum = 0.0;
      for (float& sc : scores) {
        sc = std::exp(sc - mx);
        sum += sc;
      }
      const float inv = static_cast<float>(1.0 / sum);
      float* oh = out + (int64_t{t} * n_head + h) * head_dim;
      for (int d = 0; d < head_dim; ++d) oh[d] = 0.0f;
      for (int j = j0; j <= p; ++j) {
        float wj = scores[j - j0] * inv;
        if (f16) wj = round_fp16(wj);
        for (int d = 0; d < head_dim; ++d) oh[d] += wj * value(j, d);
      }
    }
  }
}

void RefBackend::attention_packed(const float* q, const float* k, const float* v, float* out,
                                  int n_head, int n_head_kv, int head_dim, float scale,
                                  const int32_t* seq_start, int n_seqs) {
  if (n_head_kv < 1 || n_head % n_head_kv != 0)
    throw Error("attention: n_head is not a multiple of n_head_kv");
  const int q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim;
  const int group = n_head / n_head_kv;
  std::vector<double> scores;
  for (int s = 0; s < n_seqs; ++s) {
    const int j0 = seq_start[s], j1 = seq_start[s + 1];
    for (int t = j0; t < j1; ++t) {
      for (int h = 0; h < n_head; ++h) {
        const float* qh = q + int64_t{t} * q_dim + h * head_dim;
        const int64_t kv_off = int64_t{h / group} * head_dim;
        // Exact softmax, in double.
        scores.assign(j1 - j0, 0.0);
        double mx = -INFINITY, sum = 0.0;
        for (int j = j0; j < j1; ++j) {
          double sc = 0.0;
          for (int c = 0; c < head_dim; ++c)
            sc += double{qh[c]} * k[int64_t{j} * kv_dim + kv_off + c];
          scores[j - j0] = sc * scale;
          mx = std::max(mx, scores[j - j0]);
        }
        for (double& sc : scores) sum += (sc = std::exp(sc - mx));
        float* oh = out + int64_t{t} * q_dim + h * head_dim;
        for (int c = 0; c < head_dim; ++c) {
          double o = 0.0;
          for (int j = j0; j < j1; ++j) o += scores[j - j0] * v[int64_t{j} * kv_dim + kv_off + c];
          oh[c] = static_cast<float>(o / sum);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- mixture of experts

void RefBackend::moe_route(const float* logits, int n, int n_expert, int k, const MoeRouting& o,
                           int32_t* ids, float* w) {
  std::vector<int32_t> order(n_expert);
  std::vector<double> prob(n_expert);
  for (int t = 0; t < n; ++t) {
    const float* lt = logits + int64_t{t} * n_expert;
    // Experts by decreasing logit, ties by increasing index.
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t c) { return lt[a] > lt[c]; });
    const float mx = lt[order[0]];
    // Softmax over all experts, or over the k selected ones only.
    double sum = 0.0;
    for (int e = 0; e < n_expert; ++e) prob[e] = 0.0;
    for (int i = 0; i < (o.softmax_after_topk ? k : n_expert); ++i) {
      const int32_t e = o.softmax_after_topk ? order[i] : i;
      prob[e] = std::exp(double{lt[e]} - mx);
      sum += prob[e];
    }
    double sel = 0.0;
    for (int i = 0; i < k; ++i) sel += prob[order[i]] / sum;
    for (int i = 0; i < k; ++i) {
      double pi = prob[order[i]] / sum;
      if (o.norm_topk && !o.softmax_after_topk) pi /= sel;
      ids[int64_t{t} * k + i] = order[i];
      w[int64_t{t} * k + i] = static_cast<float>(pi);
    }
  }
}

void RefBackend::gather_rows(const float* src, const int32_t* rows, int m, int d, float* dst) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < d; ++j) dst[int64_t{i} * d + j] = src[int64_t{rows[i]} * d + j];
}

void RefBackend::scatter_add_rows(const float* src, const int32_t* rows, const float* w, int m,
                                  int d, float* dst) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < d; ++j) dst[int64_t{rows[i]} * d + j] += w[i] * src[int64_t{i} * d + j];
}

// ---------------------------------------------------------------- pooling

void RefBackend::pool_rows(const float* x, int d, const int32_t* seq_start, int n_seqs,
                           RowPool kind, float* out) {
  for (int s = 0; s < n_seqs; ++s) {
    const int r0 = seq_start[s], r1 = seq_start[s + 1];
    float* o = out + int64_t{s} * d;
    for (int c = 0; c < d; ++c) {
      if (r1 <= r0) {  // an empty sequence pools to zeros
        o[c] = 0.0f;
      } else if (kind == RowPool::FIRST) {
        o[c] = x[int64_t{r0} * d + c];
      } else if (kind == RowPool::LAST) {
        o[c] = x[int64_t{r1 - 1} * d + c];
      } else {
        double sum = 0.0;
        for (int r = r0; r < r1; ++r) sum += x[int64_t{r} * d + c];
        o[c] = static_cast<float>(sum / (r1 - r0));
      }
    }
  }
}

}  // namespace ref
}  // namespace tessera
