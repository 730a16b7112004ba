// CPU ops for the architecture families beyond Llama: GeGLU, scaling,
// soft-capping, attention with a sliding window / ALiBi / soft-capped scores, and the
// mixture-of-experts helpers (routing, row gather and weighted scatter-add).
//
// Plain scalar code, split across the thread pool; each op has a naive reference test in
// tests/unit/test_ops_ext.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/quants.h"
#include "core/error.h"

namespace tessera::cpu {

namespace {

inline float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535588f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
}

inline float sigmoid(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}

// ALiBi slope of head h, as ggml computes it: heads up to the largest power of two
// n_head_log2 get m0^(h+1); the rest interleave between them with m1^(2(h-n_head_log2)+1).
float alibi_slope(int h, int n_head, float max_bias) {
  const int n_head_log2 = 1 << static_cast<int>(std::floor(std::log2(static_cast<float>(n_head))));
  const float m0 = std::pow(2.0f, -max_bias / n_head_log2);
  const float m1 = std::pow(2.0f, -(max_bias / 2.0f) / n_head_log2);
  return h < n_head_log2 ? std::pow(m0, static_cast<float>(h + 1))
                         : std::pow(m1, static_cast<float>(2 * (h - n_head_log2) + 1));
}

}  // namespace

void CpuBackend::gelu_mul(float* gate, const float* up, int n, int d) {
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b * d; i < e * d; ++i) gate[i] = gelu_tanh(gate[i]) * up[i];
      },
      grain(int64_t{d} * 16));
}

void CpuBackend::scale(float* x, int n, int d, float s) {
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b * d; i < e * d; ++i) x[i] *= s;
      },
      grain(d));
}

void CpuBackend::softcap(float* x, int n, int d, float cap) {
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b * d; i < e * d; ++i) x[i] = cap * std::tanh(x[i] / cap);
      },
      grain(int64_t{d} * 16));
}

void CpuBackend::add_scaled(float* x, const float* y, const float* w, int n, int d,
                            bool sigmoid_w) {
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
          const float wi = sigmoid_w ? sigmoid(w[i]) : w[i];
          for (int j = 0; j < d; ++j) x[i * d + j] += wi * y[i * d + j];
        }
      },
      grain(d));
}

namespace {
constexpr int kMaxHeadDim = 1024;
}  // namespace

void CpuBackend::attention_ext(const float* q, const KVLayer& kv, float* out, int n_head,
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
  const int bs = b.block_size;
  if (head_dim > kMaxHeadDim)
    throw Error("head dimension " + std::to_string(head_dim) + " is too large");
  int max_pos = 0;
  for (int t = 0; t < b.n_tokens; ++t) max_pos = std::max(max_pos, b.pos[t]);
  const bool f16 = kv.type == DType::F16;
  const int span = o.n_window > 0 ? std::min(max_pos + 1, o.n_window) : max_pos + 1;
  const AlibiHeads alibi = alibi_heads(o, n_head);  // slopes by the model's head index
  // fp16 rows: q·k by the F16 weight dot (fp16 row times f32 row) and each value row widened
  // by the F16 dequantizer, both SIMD where the CPU has them; the sums stay f32.
  const VecDotFn dot16 = vec_dot_fn(DType::F16);

  pool_.parallel_for(
      static_cast<int64_t>(b.n_tokens) * n_head,
      [&](int64_t ib, int64_t ie, int) {
        thread_local std::vector<float> scores;
        if (static_cast<int>(scores.size()) < span) scores.resize(span);
        for (int64_t item = ib; item < ie; ++item) {
          const int t = static_cast<int>(item / n_head);
          if (flash && !b.prompt_tiled[t]) continue;  // done above
          const int h = static_cast<int>(item % n_head);
          const int kvh = h / group;
          const int p = b.pos[t];
          const int j0 = o.n_window > 0 ? std::max(0, p - o.n_window + 1) : 0;
          const int32_t* table = b.block_tables[b.seq_of[t]];
          const float* qraw = q + (static_cast<int64_t>(t) * n_head + h) * head_dim;
          // Same roundings as Backend::attention over an fp16 cache: q and the softmax
          // weights to fp16, sums in f32 (the softmax denominator in double). An f32 cache
          // is exact.
          float qh[kMaxHeadDim];
          for (int d = 0; d < head_dim; ++d)
            qh[d] = f16 ? fp16_to_fp32(fp32_to_fp16(qraw[d])) : qraw[d];
          const float slope = o.alibi_max_bias > 0.0f
                                  ? alibi_slope(alibi.head0 + h, alibi.n_head, o.alibi_max_bias)
                                  : 0.0f;

          float max_score = -INFINITY;
          for (int j = j0; j <= p; ++j) {
            const int64_t slot = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
            const int64_t off = slot * kv_dim + kvh * head_dim;
            float s = 0.0f;
            if (f16) {
              s = dot16(head_dim, kv.k16() + off, qh);
            } else {
              const float* kj = kv.k32() + off;
              for (int d = 0; d < head_dim; ++d) s += qh[d] * kj[d];
            }
            s *= o.scale;
            if (o.softcap > 0.0f) s = o.softcap * std::tanh(s / o.softcap);
            s += slope * static_cast<float>(j - p);
            scores[j - j0] = s;
            max_score = std::max(max_score, s);
          }
          double sum = 0.0;
          for (int j = j0; j <= p; ++j) {
            scores[j - j0] = std::exp(scores[j - j0] - max_score);
            sum += scores[j - j0];
          }
          const float inv = static_cast<float>(1.0 / sum);
          float* oh = out + (static_cast<int64_t>(t) * n_head + h) * head_dim;
          std::fill(oh, oh + head_dim, 0.0f);
          for (int j = j0; j <= p; ++j) {
            const int64_t slot = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
            const int64_t off = slot * kv_dim + kvh * head_dim;
            const float w = scores[j - j0] * inv;
            if (f16) {
              float vj[kMaxHeadDim];
              dequantize_row(DType::F16, kv.v16() + off, vj, head_dim);
              const float wgt = fp16_to_fp32(fp32_to_fp16(w));
              for (int d = 0; d < head_dim; ++d) oh[d] += wgt * vj[d];
            } else {
              const float* vj = kv.v32() + off;
              for (int d = 0; d < head_dim; ++d) oh[d] += w * vj[d];
            }
          }
        }
      },
      grain(int64_t{head_dim} * 2 * span));
}

void CpuBackend::moe_route(const float* logits, int n, int n_expert, int k, const MoeRouting& o,
                           int32_t* ids, float* w) {
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        // Per-thread scratch, reused across steps: no allocation in the decode loop.
        thread_local std::vector<int32_t> order;
        thread_local std::vector<float> prob;
        order.resize(n_expert);
        prob.resize(n_expert);
        for (int64_t t = b; t < e; ++t) {
          const float* lt = logits + t * n_expert;
          std::iota(order.begin(), order.end(), 0);
          std::partial_sort(
              order.begin(), order.begin() + k, order.end(),
              [&](int32_t a, int32_t c) { return lt[a] > lt[c] || (lt[a] == lt[c] && a < c); });
          // Softmax over the experts that take part (all, or the k selected).
          const int n_soft = o.softmax_after_topk ? k : n_expert;
          const float mx = lt[order[0]];
          float sum = 0.0f;
          for (int i = 0; i < n_soft; ++i) {
            const int32_t ex = o.softmax_after_topk ? order[i] : i;
            prob[ex] = std::exp(lt[ex] - mx);
            sum += prob[ex];
          }
          float sel = 0.0f;
          for (int i = 0; i < k; ++i) sel += prob[order[i]] / sum;
          for (int i = 0; i < k; ++i) {
            ids[t * k + i] = order[i];
            float p = prob[order[i]] / sum;
            if (o.norm_topk && !o.softmax_after_topk) p /= sel;
            w[t * k + i] = p;
          }
        }
      },
      grain(int64_t{n_expert} * 16));
}

void CpuBackend::gather_rows(const float* src, const int32_t* rows, int m, int d, float* dst) {
  pool_.parallel_for(
      m,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i)
          std::memcpy(dst + i * d, src + static_cast<int64_t>(rows[i]) * d, sizeof(float) * d);
      },
      grain(d));
}

void CpuBackend::scatter_add_rows(const float* src, const int32_t* rows, const float* w, int m,
                                  int d, float* dst) {
  // Serial over rows: several source rows may add into one destination row.
  for (int i = 0; i < m; ++i) {
    float* y = dst + static_cast<int64_t>(rows[i]) * d;
    const float* x = src + static_cast<int64_t>(i) * d;
    for (int j = 0; j < d; ++j) y[j] += w[i] * x[j];
  }
}

}  // namespace tessera::cpu
