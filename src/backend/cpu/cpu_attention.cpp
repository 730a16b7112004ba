// Attention over the paged KV cache, one (token, KV head) pair per work item: the item
// handles the n_head / n_head_kv query heads that share the KV head, so each K and V row
// is read once per group rather than once per query head.
//
// For token t at position p in sequence s, key/value j (0 <= j <= p) lives in slot
// block_table[s][j / B] * B + j % B; the B slots of a block are consecutive rows, which
// the SIMD kernels walk with a stride of kv_dim. Scores are computed in full (two-pass
// softmax in float with a running max), which is exact enough to track the reference
// implementation. A token's result depends only on its own query and context, never on
// which other tokens share the batch.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/quants.h"

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
  const int64_t s_stride = max_pos + 1;  // scores: [group, n_ctx] per thread
  for (auto& s : scratch_)
    if (static_cast<int64_t>(s.size()) < group * s_stride) s.resize(group * s_stride);
  const AttnScoresFn qk = attn_scores_fn();
  const AttnAccumFn av = attn_accum_fn();

  pool_.parallel_for(static_cast<int64_t>(b.n_tokens) * n_head_kv, [&](int64_t ib, int64_t ie,
                                                                        int thread) {
    float* scores = scratch_[thread].data();
    for (int64_t item = ib; item < ie; ++item) {
      const int t = static_cast<int>(item / n_head_kv);
      const int kvh = static_cast<int>(item % n_head_kv);
      const int n_ctx = b.pos[t] + 1;
      const int32_t* table = b.block_tables[b.seq_of[t]];
      const int64_t head0 = static_cast<int64_t>(t) * n_head + int64_t{kvh} * group;
      const float* qg = q + head0 * head_dim;  // [group, head_dim]
      float* og = out + head0 * head_dim;      // [group, head_dim]

      for (int j0 = 0; j0 < n_ctx; j0 += bs) {
        const int64_t row0 = (static_cast<int64_t>(table[j0 / bs]) * bs) * kv_dim + kvh * head_dim;
        qk(qg, group, head_dim, kv.k + row0, kv_dim, std::min(bs, n_ctx - j0), scale, scores + j0,
           s_stride);
      }
      for (int h = 0; h < group; ++h) {
        float* sh = scores + h * s_stride;
        float max_score = -INFINITY;
        for (int j = 0; j < n_ctx; ++j) max_score = std::max(max_score, sh[j]);
        float sum = 0.0f;
        for (int j = 0; j < n_ctx; ++j) {
          sh[j] = std::exp(sh[j] - max_score);
          sum += sh[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < n_ctx; ++j) sh[j] *= inv;
      }
      std::fill(og, og + int64_t{group} * head_dim, 0.0f);
      for (int j0 = 0; j0 < n_ctx; j0 += bs) {
        const int64_t row0 = (static_cast<int64_t>(table[j0 / bs]) * bs) * kv_dim + kvh * head_dim;
        av(scores + j0, s_stride, group, kv.v + row0, kv_dim, std::min(bs, n_ctx - j0), head_dim,
           og);
      }
    }
  }, grain(int64_t{group} * head_dim * 4 * (max_pos + 1)));
}

}  // namespace tessera::cpu
