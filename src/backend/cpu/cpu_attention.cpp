// Attention over the paged KV cache, one (token, head) pair per work item.
//
// For token t at position p in sequence s, key/value j (0 <= j <= p) lives in slot
// block_table[s][j / B] * B + j % B. Scores are computed in full (two-pass softmax in
// float with a running max), which is exact enough to track the reference implementation.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"

namespace tessera::cpu {

void CpuBackend::store_kv(const KVLayer& kv, const float* k, const float* v, int kv_dim,
                          const AttentionBatch& b) {
  const size_t bytes = sizeof(float) * kv_dim;
  for (int t = 0; t < b.n_tokens; ++t) {
    const int64_t slot = b.slots[t];
    std::memcpy(kv.k + slot * kv_dim, k + static_cast<int64_t>(t) * kv_dim, bytes);
    std::memcpy(kv.v + slot * kv_dim, v + static_cast<int64_t>(t) * kv_dim, bytes);
  }
}

void CpuBackend::attention(const float* q, const KVLayer& kv, float* out, int n_head,
                           int n_head_kv, int head_dim, float scale, const AttentionBatch& b) {
  const int kv_dim = n_head_kv * head_dim;
  const int group = n_head / n_head_kv;
  const int bs = b.block_size;
  int max_pos = 0;
  for (int t = 0; t < b.n_tokens; ++t) max_pos = std::max(max_pos, b.pos[t]);
  for (auto& s : scratch_)
    if (static_cast<int>(s.size()) < max_pos + 1) s.resize(max_pos + 1);

  pool_.parallel_for(static_cast<int64_t>(b.n_tokens) * n_head, [&](int64_t ib, int64_t ie,
                                                                     int thread) {
    float* scores = scratch_[thread].data();
    for (int64_t item = ib; item < ie; ++item) {
      const int t = static_cast<int>(item / n_head);
      const int h = static_cast<int>(item % n_head);
      const int kvh = h / group;
      const int n_ctx = b.pos[t] + 1;
      const int32_t* table = b.block_tables[b.seq_of[t]];
      const float* qh = q + (static_cast<int64_t>(t) * n_head + h) * head_dim;

      float max_score = -INFINITY;
      for (int j = 0; j < n_ctx; ++j) {
        const int64_t slot = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
        const float* kj = kv.k + slot * kv_dim + kvh * head_dim;
        float s = 0.0f;
        for (int d = 0; d < head_dim; ++d) s += qh[d] * kj[d];
        s *= scale;
        scores[j] = s;
        max_score = std::max(max_score, s);
      }
      float sum = 0.0f;
      for (int j = 0; j < n_ctx; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        sum += scores[j];
      }
      const float inv = 1.0f / sum;
      float* oh = out + (static_cast<int64_t>(t) * n_head + h) * head_dim;
      std::fill(oh, oh + head_dim, 0.0f);
      for (int j = 0; j < n_ctx; ++j) {
        const int64_t slot = static_cast<int64_t>(table[j / bs]) * bs + j % bs;
        const float* vj = kv.v + slot * kv_dim + kvh * head_dim;
        const float wgt = scores[j] * inv;
        for (int d = 0; d < head_dim; ++d) oh[d] += wgt * vj[d];
      }
    }
  }, grain(int64_t{head_dim} * 2 * (max_pos + 1)));
}

}  // namespace tessera::cpu
