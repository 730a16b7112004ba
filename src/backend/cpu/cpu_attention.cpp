// Attention over the paged KV cache, one (token, KV head) pair per work item: the item
// handles the n_head / n_head_kv query heads that share the KV head, so each K and V row
// is read once per group rather than once per query head.
//
// For token t at position p in sequence s, key/value j (0 <= j <= p) lives in slot
// block_table[s][j / B] * B + j % B; the B slots of a block are consecutive rows, which
// the SIMD kernels walk with a stride of kv_dim. K and V are stored as fp16. The arithmetic
// follows llama.cpp's exact (non-flash) attention over an fp16 cache, so the two engines see
// the same roundings: q is rounded to fp16 before q·k, scores are scaled and soft-maxed in
// f32 (sum in double), and the weights are rounded to fp16 before the weighted sum of V.
// A token's result depends only on its own query and context, never on which other tokens
// share the batch.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/quants.h"

namespace tessera::cpu {

void CpuBackend::store_kv(const KVLayer& kv, const float* k, const float* v, int kv_dim,
                          const AttentionBatch& b) {
  for (int t = 0; t < b.n_tokens; ++t) {
    const int64_t slot = b.slots[t];
    const float* kt = k + static_cast<int64_t>(t) * kv_dim;
    const float* vt = v + static_cast<int64_t>(t) * kv_dim;
    if (kv.type == DType::F16) {
      quantize_row(DType::F16, kt, kv.k16() + slot * kv_dim, kv_dim);
      quantize_row(DType::F16, vt, kv.v16() + slot * kv_dim, kv_dim);
    } else {
      std::memcpy(kv.k32() + slot * kv_dim, kt, sizeof(float) * kv_dim);
      std::memcpy(kv.v32() + slot * kv_dim, vt, sizeof(float) * kv_dim);
    }
  }
}

namespace {

// x[0, n) rounded to the nearest fp16 values, kept as f32, through the dispatched
// (F16C where present) conversions; `tmp` holds n fp16 values.
inline void round_fp16(float* x, int64_t n, uint16_t* tmp) {
  quantize_row(DType::F16, x, tmp, n);
  dequantize_row(DType::F16, tmp, x, n);
}

}  // namespace

void CpuBackend::attention(const float* q, const KVLayer& kv, float* out, int n_head,
                           int n_head_kv, int head_dim, float scale, const AttentionBatch& b) {
  if (kv.type == DType::F32) {
    // Exact attention over an f32 cache: the general kernel, with no window or bias.
    AttentionOptions o;
    o.scale = scale;
    attention_ext(q, kv, out, n_head, n_head_kv, head_dim, o, b);
    return;
  }
  const int kv_dim = n_head_kv * head_dim;
  const int group = n_head / n_head_kv;
  const int bs = b.block_size;
  int max_pos = 0;
  for (int t = 0; t < b.n_tokens; ++t) max_pos = std::max(max_pos, b.pos[t]);
  const int64_t s_stride = max_pos + 1;  // scores: [group, n_ctx] per thread, then q16
  // Per thread: scores [group, s_stride], q16 [group, head_dim], and fp16 staging for the
  // roundings (as many values as the larger of the two, as floats' worth of room).
  const int64_t n_h16 = std::max<int64_t>(s_stride, int64_t{group} * head_dim);
  const int64_t scratch_size = group * s_stride + int64_t{group} * head_dim + (n_h16 + 1) / 2;
  for (auto& s : scratch_)
    if (static_cast<int64_t>(s.size()) < scratch_size) s.resize(scratch_size);
  const AttnScoresFn qk = attn_scores_fn();
  const AttnAccumFn av = attn_accum_fn();

  pool_.parallel_for(static_cast<int64_t>(b.n_tokens) * n_head_kv, [&](int64_t ib, int64_t ie,
                                                                        int thread) {
    float* scores = scratch_[thread].data();
    float* q16 = scores + group * s_stride;  // [group, head_dim] q rounded to fp16
    uint16_t* h16 = reinterpret_cast<uint16_t*>(q16 + int64_t{group} * head_dim);
    for (int64_t item = ib; item < ie; ++item) {
      const int t = static_cast<int>(item / n_head_kv);
      const int kvh = static_cast<int>(item % n_head_kv);
      const int n_ctx = b.pos[t] + 1;
      const int32_t* table = b.block_tables[b.seq_of[t]];
      const int64_t head0 = static_cast<int64_t>(t) * n_head + int64_t{kvh} * group;
      const float* qg = q + head0 * head_dim;  // [group, head_dim]
      float* og = out + head0 * head_dim;      // [group, head_dim]
      std::copy(qg, qg + int64_t{group} * head_dim, q16);
      round_fp16(q16, int64_t{group} * head_dim, h16);

      for (int j0 = 0; j0 < n_ctx; j0 += bs) {
        const int64_t row0 = (static_cast<int64_t>(table[j0 / bs]) * bs) * kv_dim + kvh * head_dim;
        qk(q16, group, head_dim, kv.k16() + row0, kv_dim, std::min(bs, n_ctx - j0), scale, scores + j0,
           s_stride);
      }
      for (int h = 0; h < group; ++h) {
        float* sh = scores + h * s_stride;
        float max_score = -INFINITY;
        for (int j = 0; j < n_ctx; ++j) max_score = std::max(max_score, sh[j]);
        double sum = 0.0;
        for (int j = 0; j < n_ctx; ++j) {
          sh[j] = std::exp(sh[j] - max_score);
          sum += sh[j];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int j = 0; j < n_ctx; ++j) sh[j] *= inv;
        round_fp16(sh, n_ctx, h16);
      }
      std::fill(og, og + int64_t{group} * head_dim, 0.0f);
      for (int j0 = 0; j0 < n_ctx; j0 += bs) {
        const int64_t row0 = (static_cast<int64_t>(table[j0 / bs]) * bs) * kv_dim + kvh * head_dim;
        av(scores + j0, s_stride, group, kv.v16() + row0, kv_dim, std::min(bs, n_ctx - j0), head_dim,
           og);
      }
    }
  }, grain(int64_t{group} * head_dim * 4 * (max_pos + 1)));
}

}  // namespace tessera::cpu
