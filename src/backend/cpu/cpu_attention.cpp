// Attention over the paged KV cache, one (token, KV head) pair per work item: the item
// handles the n_head / n_head_kv query heads that share the KV head, so each K and V row
// is read once per group rather than once per query head.
//
// For token t at position p in sequence s, key/value j (0 <= j <= p) lives in slot
// block_table[s][j / B] * B + j % B; the B slots of a block are consecutive rows, which
// the kernel walks with a stride of kv_dim. K and V are stored as fp16. The arithmetic is
// llama.cpp's CPU flash attention over an fp16 cache (its default), so the two engines round
// alike. llama.cpp has two orders: key by key with an online softmax and an fp16 accumulator
// (FlashAttnFn in quants.h) for batches of fewer than 64 query rows, and f32 tiles of 64 keys
// (FlashAttnTiledFn) for larger ones. Here the choice is per token and fixed by its request
// (AttentionBatch::prompt_tiled: the rows of a prompt of kTiledPromptMin tokens or more take
// the tiled order, everything else the key-by-key one), so a token's result depends only on
// its own query and context, never on which other tokens share the batch or how its prompt
// was chunked; a prompt fed whole matches llama.cpp's, and so do its generated tokens.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

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

void CpuBackend::attention(const float* q, const KVLayer& kv, float* out, int n_head, int n_head_kv,
                           int head_dim, float scale, const AttentionBatch& b) {
  if (kv.type == DType::F32) {
    // Exact attention over an f32 cache: the general kernel, with no window or bias.
    AttentionOptions o;
    o.scale = scale;
    attention_ext(q, kv, out, n_head, n_head_kv, head_dim, o, b);
    return;
  }
  attention_f16(q, kv, out, n_head, n_head_kv, head_dim, scale, 0, b);
}

void CpuBackend::attention_f16(const float* q, const KVLayer& kv, float* out, int n_head,
                               int n_head_kv, int head_dim, float scale, int n_window,
                               const AttentionBatch& b) {
  // Rows of long prompts: the tiles, over all keys (with a window, attention_ext's softmax).
  if (n_window == 0 && b.prompt_tiled != nullptr &&
      attention_tiled(q, kv, out, n_head, n_head_kv, head_dim, scale, b) == b.n_tokens)
    return;
  const int kv_dim = n_head_kv * head_dim;
  const int group = n_head / n_head_kv;
  const int bs = b.block_size;
  const int64_t gd = int64_t{group} * head_dim;
  // Per thread: q16 and acc16 [group, head_dim] fp16 each, then m and s [group] floats.
  const int64_t scratch_size = gd + 2 * group;
  for (auto& s : scratch_)
    if (static_cast<int64_t>(s.size()) < scratch_size) s.resize(scratch_size);
  int max_pos = 0;
  for (int t = 0; t < b.n_tokens; ++t) max_pos = std::max(max_pos, b.pos[t]);
  const FlashAttnFn fa = flash_attn_fn();

  pool_.parallel_for(
      static_cast<int64_t>(b.n_tokens) * n_head_kv,
      [&](int64_t ib, int64_t ie, int thread) {
        uint16_t* q16 = reinterpret_cast<uint16_t*>(scratch_[thread].data());
        uint16_t* acc = q16 + gd;
        float* m = scratch_[thread].data() + gd;
        float* s = m + group;
        for (int64_t item = ib; item < ie; ++item) {
          const int t = static_cast<int>(item / n_head_kv);
          const int kvh = static_cast<int>(item % n_head_kv);
          if (b.prompt_tiled != nullptr && b.prompt_tiled[t]) continue;
          const int n_ctx = b.pos[t] + 1;
          const int32_t* table = b.block_tables[b.seq_of[t]];
          const int64_t head0 = static_cast<int64_t>(t) * n_head + int64_t{kvh} * group;
          quantize_row(DType::F16, q + head0 * head_dim, q16, gd);
          std::fill(acc, acc + gd, uint16_t{0});
          std::fill(m, m + group, -INFINITY);
          std::fill(s, s + group, 0.0f);
          // Keys in position order (from the window's first), up to the end of a block of the
          // paged cache (consecutive rows) per call; the kernel goes key by key, so where the
          // calls split the keys does not change a bit.
          for (int j = n_window > 0 ? std::max(0, n_ctx - n_window) : 0; j < n_ctx;) {
            const int run = std::min(bs - j % bs, n_ctx - j);
            const int64_t row0 =
                (static_cast<int64_t>(table[j / bs]) * bs + j % bs) * kv_dim + kvh * head_dim;
            fa(q16, group, head_dim, kv.k16() + row0, kv.v16() + row0, kv_dim, run, scale, m, s,
               acc);
            j += run;
          }
          float* og = out + head0 * head_dim;  // [group, head_dim]
          dequantize_row(DType::F16, acc, og, gd);
          for (int h = 0; h < group; ++h) {
            const float inv = s[h] == 0.0f ? 0.0f : 1.0f / s[h];
            for (int d = 0; d < head_dim; ++d) og[h * head_dim + d] *= inv;
          }
        }
      },
      grain(int64_t{group} * head_dim * 8 *
            (n_window > 0 ? std::min(max_pos + 1, n_window) : max_pos + 1)));
}

int CpuBackend::attention_tiled(const float* q, const KVLayer& kv, float* out, int n_head,
                                int n_head_kv, int head_dim, float scale, const AttentionBatch& b) {
  // Work items: runs of up to kTiledRows consecutive tiled tokens of one sequence, x KV heads.
  std::vector<std::pair<int, int>>& runs = tiled_runs_;  // (first token, rows)
  runs.clear();
  int n_tiled = 0;
  for (int t = 0; t < b.n_tokens;) {
    if (!b.prompt_tiled[t]) {
      ++t;
      continue;
    }
    int e = t + 1;
    while (e < b.n_tokens && e - t < kTiledRows && b.prompt_tiled[e] && b.seq_of[e] == b.seq_of[t])
      ++e;
    runs.emplace_back(t, e - t);
    n_tiled += e - t;
    t = e;
  }
  if (runs.empty()) return 0;
  const int kv_dim = n_head_kv * head_dim;
  const int group = n_head / n_head_kv;
  const FlashAttnTiledFn fa = flash_attn_tiled_fn();
  int max_pos = 0;
  for (int t = 0; t < b.n_tokens; ++t) max_pos = std::max(max_pos, b.pos[t]);
  pool_.parallel_for(
      static_cast<int64_t>(runs.size()) * n_head_kv,
      [&](int64_t ib, int64_t ie, int) {
        for (int64_t item = ib; item < ie; ++item) {
          const auto [t0, nr] = runs[item / n_head_kv];
          const int kvh = static_cast<int>(item % n_head_kv);
          const int64_t head0 = static_cast<int64_t>(t0) * n_head + int64_t{kvh} * group;
          TiledAttnArgs a;
          a.q = q + head0 * head_dim;
          a.q_stride = int64_t{n_head} * head_dim;
          a.n_rows = nr;
          a.pos = b.pos + t0;
          a.nq = group;
          a.head_dim = head_dim;
          a.k = kv.k16() + int64_t{kvh} * head_dim;
          a.v = kv.v16() + int64_t{kvh} * head_dim;
          a.kv_stride = kv_dim;
          a.block_table = b.block_tables[b.seq_of[t0]];
          a.block_size = b.block_size;
          a.scale = scale;
          a.out = out + head0 * head_dim;
          a.out_stride = int64_t{n_head} * head_dim;
          fa(a);
        }
      },
      grain(int64_t{kTiledRows} * group * head_dim * 4 * (max_pos + 1)));
  return n_tiled;
}

}  // namespace tessera::cpu
