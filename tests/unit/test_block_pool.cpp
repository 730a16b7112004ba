// BlockPool and KVCacheManager without a model: allocation, reference counts, LRU
// eviction, prefix-cache hits and their verification.
#include <gtest/gtest.h>

#include "engine/kv_manager.h"
#include "kv/block_pool.h"

namespace tessera {
namespace {

TEST(BlockPool, AllocateUntilEmptyThenReuseInReleaseOrder) {
  BlockPool pool(3);
  EXPECT_EQ(pool.n_free(), 3);
  int a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  EXPECT_EQ(pool.allocate(), -1);
  EXPECT_EQ(pool.n_free(), 0);
  EXPECT_EQ(pool.n_used(), 3);
  pool.release(b);
  pool.release(a);
  EXPECT_EQ(pool.n_free(), 2);
  EXPECT_EQ(pool.allocate(), b);  // least recently released first
  EXPECT_EQ(pool.allocate(), a);
  (void)c;
}

TEST(BlockPool, SharedBlockFreedOnlyAtLastRelease) {
  BlockPool pool(2);
  int a = pool.allocate();
  pool.ref(a);
  EXPECT_EQ(pool.ref_count(a), 2);
  pool.release(a);
  EXPECT_EQ(pool.n_free(), 1);
  pool.release(a);
  EXPECT_EQ(pool.n_free(), 2);
}

TEST(BlockPool, CachedBlockIsFoundUntilEvicted) {
  BlockPool pool(2);
  const int32_t toks[4] = {1, 2, 3, 4};
  const BlockHash h = hash_block(0, toks, 4);
  int a = pool.allocate();
  pool.cache(a, h, 0, toks, 4);
  pool.release(a);  // cached, evictable
  EXPECT_EQ(pool.lookup(h, 0, toks, 4), a);
  EXPECT_EQ(pool.n_free(), 2);
  // A hit takes it out of the free queue.
  pool.ref(a);
  EXPECT_EQ(pool.n_free(), 1);
  pool.release(a);
  // Allocating everything evicts it.
  int x = pool.allocate(), y = pool.allocate();
  EXPECT_NE(x, -1);
  EXPECT_NE(y, -1);
  EXPECT_EQ(pool.lookup(h, 0, toks, 4), -1);
}

TEST(BlockPool, HashCollisionIsNotAHit) {
  BlockPool pool(2);
  const int32_t t1[2] = {5, 6}, t2[2] = {7, 8};
  int a = pool.allocate();
  pool.cache(a, /*hash=*/42, 0, t1, 2);
  EXPECT_EQ(pool.lookup(42, 0, t1, 2), a);
  EXPECT_EQ(pool.lookup(42, 0, t2, 2), -1);  // same hash, other tokens
  EXPECT_EQ(pool.lookup(42, 1, t1, 2), -1);  // same tokens, other parent
}

Request make_request(std::vector<int32_t> toks) {
  Request r;
  r.tokens = std::move(toks);
  r.n_prompt = static_cast<int>(r.tokens.size());
  return r;
}

TEST(KVCacheManager, PrefixSharedAcrossRequestsButNotTheLastToken) {
  KVCacheManager m(16, 4, true);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 10; ++i) prompt.push_back(100 + i);
  Request a = make_request(prompt);
  EXPECT_TRUE(m.find_cached_prefix(a).empty());
  ASSERT_TRUE(m.allocate(a, 10));
  EXPECT_EQ(a.blocks.size(), 3u);
  a.n_computed = 10;
  m.cache_full_blocks(a);  // blocks 0 and 1 are full

  Request b = make_request(prompt);
  std::vector<int> hits = m.find_cached_prefix(b);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0], a.blocks[0]);
  EXPECT_EQ(hits[1], a.blocks[1]);
  ASSERT_TRUE(m.allocate(b, 2, hits));
  EXPECT_EQ(b.n_computed, 8);
  EXPECT_EQ(m.pool().ref_count(a.blocks[0]), 2);
  EXPECT_NE(b.blocks[2], a.blocks[2]);  // the partial block is private

  // A prompt of exactly 8 tokens must still compute its last token.
  Request c = make_request(std::vector<int32_t>(prompt.begin(), prompt.begin() + 8));
  EXPECT_EQ(m.find_cached_prefix(c).size(), 1u);

  m.free(a);
  m.free(b);
  EXPECT_EQ(m.pool().n_free(), 16);
  EXPECT_GT(m.hit_tokens(), 0);
}

TEST(KVCacheManager, AllocationFailsWithoutSideEffects) {
  KVCacheManager m(2, 4, true);
  Request a = make_request({1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_FALSE(m.allocate(a, 9));  // needs 3 blocks
  EXPECT_TRUE(a.blocks.empty());
  EXPECT_EQ(m.pool().n_free(), 2);
  EXPECT_TRUE(m.allocate(a, 8));
  EXPECT_EQ(a.blocks.size(), 2u);
}

}  // namespace
}  // namespace tessera
