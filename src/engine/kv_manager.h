// Maps requests to KV blocks: allocation of block tables, prefix-cache matching and
// registration of newly filled blocks. Mechanism only; who runs is the scheduler's call.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/request.h"
#include "kv/block_pool.h"

namespace tessera {

class KVCacheManager {
 public:
  KVCacheManager(int n_blocks, int block_size, bool enable_prefix_caching);

  int block_size() const { return block_size_; }
  const BlockPool& pool() const { return pool_; }

  // Blocks of the prefix cache that hold r's leading full blocks (r owns no blocks yet).
  // Never covers the last token: its logits must be computed. No references are taken.
  std::vector<int> find_cached_prefix(Request& r);

  // Makes r's block table cover n_computed + n_new tokens, first adopting `cached`
  // (from find_cached_prefix, which then count as computed). False, with nothing
  // changed, when the pool cannot supply the blocks.
  bool allocate(Request& r, int n_new, const std::vector<int>& cached = {});

  // Releases r's blocks (last block first, so a prefix's tail is evicted before its head).
  void free(Request& r);

  // Speculative decoding: r's K/V are valid for its first n_computed tokens only (the
  // rest held rejected proposals). Sets r.n_computed and releases the blocks past the one
  // holding position n_computed - 1. Those blocks were written by r alone this step and
  // are never shared or cached (only full blocks of verified tokens are); asserted.
  void rollback(Request& r, int n_computed);

  // Registers the full blocks among r's first n_computed tokens in the prefix cache.
  void cache_full_blocks(Request& r);

  // Prefix-cache counters, in tokens, over all lookups.
  int64_t query_tokens() const { return query_tokens_; }
  int64_t hit_tokens() const { return hit_tokens_; }

 private:
  void update_hashes(Request& r, int n_full);

  BlockPool pool_;
  int block_size_;
  bool prefix_caching_;
  int64_t query_tokens_ = 0, hit_tokens_ = 0;
};

}  // namespace tessera
