#include "engine/kv_manager.h"

#include <cassert>

namespace tessera {

KVCacheManager::KVCacheManager(int n_blocks, int block_size, bool enable_prefix_caching)
    : pool_(n_blocks), block_size_(block_size), prefix_caching_(enable_prefix_caching) {}

void KVCacheManager::update_hashes(Request& r, int n_full) {
  while (static_cast<int>(r.block_hashes.size()) < n_full) {
    const size_t i = r.block_hashes.size();
    const BlockHash parent = i == 0 ? 0 : r.block_hashes[i - 1];
    r.block_hashes.push_back(hash_block(parent, r.tokens.data() + i * block_size_, block_size_));
  }
}

std::vector<int> KVCacheManager::find_cached_prefix(Request& r) {
  std::vector<int> hits;
  if (!prefix_caching_) return hits;
  assert(r.blocks.empty() && r.n_computed == 0);
  const int n_full = (r.n_tokens() - 1) / block_size_;  // keep the last token uncomputed
  update_hashes(r, n_full);
  for (int i = 0; i < n_full; ++i) {
    const BlockHash parent = i == 0 ? 0 : r.block_hashes[i - 1];
    const int b =
        pool_.lookup(r.block_hashes[i], parent, r.tokens.data() + i * block_size_, block_size_);
    if (b < 0) break;
    hits.push_back(b);
  }
  query_tokens_ += r.n_tokens();
  hit_tokens_ += static_cast<int64_t>(hits.size()) * block_size_;
  return hits;
}

bool KVCacheManager::allocate(Request& r, int n_new, const std::vector<int>& cached) {
  const int n_computed = r.n_computed + static_cast<int>(cached.size()) * block_size_;
  const int n_total = n_computed + n_new;
  const int have = static_cast<int>(r.blocks.size() + cached.size());
  const int need = std::max(0, (n_total + block_size_ - 1) / block_size_ - have);
  // Cached blocks that sit in the free queue stop being allocatable once adopted.
  int adopt_from_free = 0;
  for (int b : cached)
    if (pool_.ref_count(b) == 0) ++adopt_from_free;
  if (need + adopt_from_free > pool_.n_free()) return false;
  for (int b : cached) {
    pool_.ref(b);
    r.blocks.push_back(b);
  }
  r.n_computed = n_computed;
  for (int i = 0; i < need; ++i) {
    const int b = pool_.allocate();
    assert(b >= 0);
    r.blocks.push_back(b);
  }
  return true;
}

void KVCacheManager::free(Request& r) {
  for (auto it = r.blocks.rbegin(); it != r.blocks.rend(); ++it) pool_.release(*it);
  r.blocks.clear();
}

void KVCacheManager::rollback(Request& r, int n_computed) {
  assert(n_computed >= 0 &&
         n_computed <= r.n_computed + static_cast<int>(r.spec_tokens.size()) + 1);
  r.n_computed = n_computed;
  const size_t keep = static_cast<size_t>((n_computed + block_size_ - 1) / block_size_);
  while (r.blocks.size() > keep) {
    const int b = r.blocks.back();
    assert(pool_.ref_count(b) == 1 && !pool_.is_cached(b));
    pool_.release(b);
    r.blocks.pop_back();
  }
  const size_t n_full = static_cast<size_t>(n_computed / block_size_);
  if (r.block_hashes.size() > n_full) r.block_hashes.resize(n_full);
}

void KVCacheManager::cache_full_blocks(Request& r) {
  if (!prefix_caching_) return;
  const int n_full = r.n_computed / block_size_;
  update_hashes(r, n_full);
  for (int i = 0; i < n_full; ++i) {
    const int b = r.blocks[i];
    if (pool_.is_cached(b)) continue;
    const BlockHash parent = i == 0 ? 0 : r.block_hashes[i - 1];
    pool_.cache(b, r.block_hashes[i], parent, r.tokens.data() + i * block_size_, block_size_);
  }
}

}  // namespace tessera
