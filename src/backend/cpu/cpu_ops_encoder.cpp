// CPU ops for encoders (BERT family) and pooled embeddings: LayerNorm, exact GELU (the
// GeluFn kernel of quants.h), bidirectional attention over a packed batch (no KV cache) and
// per-sequence pooling.
//
// Scalar code but for GELU, split across the thread pool; each op has a naive reference
// test in tests/unit/test_ops_encoder.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/quants.h"
#include "core/error.h"

namespace tessera::cpu {

void CpuBackend::layer_norm(const float* x, const float* weight, const float* bias, float* y, int n,
                            int d, float eps) {
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
          const float* xi = x + i * d;
          float* yi = y + i * d;
          // Two passes (mean, then the centred squares), accumulated in double: no
          // cancellation when the mean is large against the spread.
          double sum = 0.0;
          for (int j = 0; j < d; ++j) sum += xi[j];
          const float mean = static_cast<float>(sum / d);
          double sq = 0.0;
          for (int j = 0; j < d; ++j) {
            const float c = xi[j] - mean;
            sq += static_cast<double>(c) * c;
          }
          const float inv = static_cast<float>(1.0 / std::sqrt(sq / d + eps));
          for (int j = 0; j < d; ++j)
            yi[j] = (xi[j] - mean) * inv * weight[j] + (bias ? bias[j] : 0.0f);
        }
      },
      grain(int64_t{d} * 4));
}

void CpuBackend::gelu(float* x, int n, int d) {
  const GeluFn f = gelu_fn();  // element-wise: any split gives the same bits
  pool_.parallel_for(
      n, [&](int64_t b, int64_t e, int) { f(x + b * d, (e - b) * d); }, grain(int64_t{d} * 8));
}

void CpuBackend::attention_packed(const float* q, const float* k, const float* v, float* out,
                                  int n_head, int n_head_kv, int head_dim, float scale,
                                  const int32_t* seq_start, int n_seqs) {
  if (n_head_kv < 1 || n_head % n_head_kv != 0)
    throw Error("attention: n_head is not a multiple of n_head_kv");
  const int q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim;
  const int group = n_head / n_head_kv;
  const int n = seq_start[n_seqs];
  int max_len = 0;
  for (int s = 0; s < n_seqs; ++s) max_len = std::max(max_len, seq_start[s + 1] - seq_start[s]);
  // Which sequence each token belongs to, so the work splits over (token, head) items.
  std::vector<int32_t> seq_of(n);
  for (int s = 0; s < n_seqs; ++s)
    std::fill(seq_of.begin() + seq_start[s], seq_of.begin() + seq_start[s + 1], s);

  pool_.parallel_for(
      static_cast<int64_t>(n) * n_head,
      [&](int64_t ib, int64_t ie, int) {
        thread_local std::vector<float> scores;
        if (static_cast<int>(scores.size()) < max_len) scores.resize(max_len);
        for (int64_t item = ib; item < ie; ++item) {
          const int t = static_cast<int>(item / n_head);
          const int h = static_cast<int>(item % n_head);
          const int j0 = seq_start[seq_of[t]], j1 = seq_start[seq_of[t] + 1];
          const int kvh = h / group;
          const float* qh = q + static_cast<int64_t>(t) * q_dim + h * head_dim;
          float max_score = -INFINITY;
          for (int j = j0; j < j1; ++j) {
            const float* kj = k + static_cast<int64_t>(j) * kv_dim + kvh * head_dim;
            float s = 0.0f;
            for (int c = 0; c < head_dim; ++c) s += qh[c] * kj[c];
            s *= scale;
            scores[j - j0] = s;
            max_score = std::max(max_score, s);
          }
          float sum = 0.0f;
          for (int j = j0; j < j1; ++j) {
            scores[j - j0] = std::exp(scores[j - j0] - max_score);
            sum += scores[j - j0];
          }
          const float inv = 1.0f / sum;
          float* oh = out + static_cast<int64_t>(t) * q_dim + h * head_dim;
          std::fill(oh, oh + head_dim, 0.0f);
          for (int j = j0; j < j1; ++j) {
            const float w = scores[j - j0] * inv;
            const float* vj = v + static_cast<int64_t>(j) * kv_dim + kvh * head_dim;
            for (int c = 0; c < head_dim; ++c) oh[c] += w * vj[c];
          }
        }
      },
      grain(int64_t{head_dim} * 2 * std::max(max_len, 1)));
}

void CpuBackend::pool_rows(const float* x, int d, const int32_t* seq_start, int n_seqs,
                           RowPool kind, float* out) {
  pool_.parallel_for(
      n_seqs,
      [&](int64_t b, int64_t e, int) {
        for (int64_t s = b; s < e; ++s) {
          const int r0 = seq_start[s], r1 = seq_start[s + 1];
          float* o = out + s * d;
          if (r1 <= r0) {  // an empty sequence pools to zeros
            std::fill(o, o + d, 0.0f);
            continue;
          }
          if (kind != RowPool::MEAN) {
            const int r = kind == RowPool::FIRST ? r0 : r1 - 1;
            std::memcpy(o, x + static_cast<int64_t>(r) * d, sizeof(float) * d);
            continue;
          }
          std::fill(o, o + d, 0.0f);
          for (int r = r0; r < r1; ++r) {
            const float* xr = x + static_cast<int64_t>(r) * d;
            for (int c = 0; c < d; ++c) o[c] += xr[c];
          }
          const float inv = 1.0f / static_cast<float>(r1 - r0);
          for (int c = 0; c < d; ++c) o[c] *= inv;
        }
      },
      1);
}

}  // namespace tessera::cpu
