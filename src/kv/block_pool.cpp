#include "kv/block_pool.h"

#include <cassert>
#include <cstring>

namespace tessera {

BlockHash hash_block(BlockHash parent, const int32_t* tokens, int n) {
  // 64-bit FNV-1a over the parent hash and the token ids, then a final avalanche.
  uint64_t h = 0xcbf29ce484222325ull ^ parent;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 0x100000001b3ull;
    }
  };
  mix(parent);
  for (int i = 0; i < n; ++i) mix(static_cast<uint32_t>(tokens[i]));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

BlockPool::BlockPool(int n_blocks)
    : ref_(n_blocks, 0),
      prev_(n_blocks, -1),
      next_(n_blocks, -1),
      in_queue_(n_blocks, false),
      has_hash_(n_blocks, false),
      hash_(n_blocks, 0),
      content_(n_blocks) {
  for (int b = 0; b < n_blocks; ++b) queue_push_back(b);
}

void BlockPool::queue_push_back(int b) {
  assert(!in_queue_[b]);
  prev_[b] = tail_;
  next_[b] = -1;
  if (tail_ >= 0)
    next_[tail_] = b;
  else
    head_ = b;
  tail_ = b;
  in_queue_[b] = true;
  ++n_free_;
}

void BlockPool::queue_remove(int b) {
  assert(in_queue_[b]);
  if (prev_[b] >= 0)
    next_[prev_[b]] = next_[b];
  else
    head_ = next_[b];
  if (next_[b] >= 0)
    prev_[next_[b]] = prev_[b];
  else
    tail_ = prev_[b];
  prev_[b] = next_[b] = -1;
  in_queue_[b] = false;
  --n_free_;
}

void BlockPool::uncache(int b) {
  if (!has_hash_[b]) return;
  auto range = by_hash_.equal_range(hash_[b]);
  for (auto it = range.first; it != range.second; ++it)
    if (it->second == b) {
      by_hash_.erase(it);
      break;
    }
  has_hash_[b] = false;
  content_[b].tokens.clear();
}

int BlockPool::allocate() {
  if (head_ < 0) return -1;
  const int b = head_;
  queue_remove(b);
  uncache(b);  // evict: its old content is no longer findable
  ref_[b] = 1;
  return b;
}

void BlockPool::ref(int b) {
  if (ref_[b]++ == 0) queue_remove(b);
}

void BlockPool::release(int b) {
  assert(ref_[b] > 0);
  if (--ref_[b] == 0) queue_push_back(b);
}

int BlockPool::lookup(BlockHash hash, BlockHash parent, const int32_t* tokens, int n) const {
  auto range = by_hash_.equal_range(hash);
  for (auto it = range.first; it != range.second; ++it) {
    const Content& c = content_[it->second];
    if (c.parent == parent && static_cast<int>(c.tokens.size()) == n &&
        std::memcmp(c.tokens.data(), tokens, sizeof(int32_t) * n) == 0)
      return it->second;
  }
  return -1;
}

void BlockPool::cache(int b, BlockHash hash, BlockHash parent, const int32_t* tokens, int n) {
  assert(ref_[b] > 0);
  if (has_hash_[b]) return;
  // Another block may already hold the same content (two sequences computed it at once);
  // keep both findable is pointless, keep the first.
  if (lookup(hash, parent, tokens, n) >= 0) return;
  has_hash_[b] = true;
  hash_[b] = hash;
  content_[b].parent = parent;
  content_[b].tokens.assign(tokens, tokens + n);
  by_hash_.emplace(hash, b);
}

void BlockPool::reset_prefix_cache() {
  for (int b = 0; b < n_blocks(); ++b) uncache(b);
}

}  // namespace tessera
