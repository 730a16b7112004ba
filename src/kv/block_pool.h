// The pool of physical KV blocks: reference counts, a free queue, and the prefix cache.
//
// A block is in exactly one of three states:
//   in use    ref > 0                  owned by one or more sequences
//   cached    ref == 0, has a hash     in the free queue, still findable by its hash
//   free      ref == 0, no hash        in the free queue
// The free queue is ordered least-recently-released first. allocate() takes its head,
// evicting the head's cached content if it has any (LRU eviction). A prefix-cache hit on
// a cached block takes it out of the free queue again (touch).
//
// Only full blocks are hashed, and a full block is never written again, so blocks shared
// between sequences (a common prompt prefix, or the n > 1 children of one request) are
// read-only: copy-on-write reduces to "never write a shared block", which holds by
// construction. A sequence's partial last block is always its own.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace tessera {

// Identity of a full block's content: hash of (parent block hash, its token ids).
using BlockHash = uint64_t;
BlockHash hash_block(BlockHash parent, const int32_t* tokens, int n);

class BlockPool {
 public:
  explicit BlockPool(int n_blocks);

  int n_blocks() const { return static_cast<int>(ref_.size()); }
  // Blocks allocate() can hand out now (free or evictable cached).
  int n_free() const { return n_free_; }
  int n_used() const { return n_blocks() - n_free_; }

  // A block with ref 1 and no hash, or -1 when none is left.
  int allocate();
  // Adds a reference to a block (a prefix-cache hit); takes it off the free queue if needed.
  void ref(int block);
  // Drops a reference; at zero the block joins the tail of the free queue.
  void release(int block);

  // Prefix cache. lookup() returns the block holding (parent, tokens) or -1; it does not
  // take a reference. cache() records that `block` (full, in use) holds that content.
  int lookup(BlockHash hash, BlockHash parent, const int32_t* tokens, int n) const;
  void cache(int block, BlockHash hash, BlockHash parent, const int32_t* tokens, int n);
  bool is_cached(int block) const { return has_hash_[block]; }
  int ref_count(int block) const { return ref_[block]; }
  // Forget every cached hash (e.g. after weights change); in-use blocks stay allocated.
  void reset_prefix_cache();

 private:
  void queue_push_back(int b);
  void queue_remove(int b);
  void uncache(int b);

  std::vector<int> ref_;
  std::vector<int> prev_, next_;  // intrusive doubly-linked free queue; -1 terminates
  std::vector<bool> in_queue_;
  int head_ = -1, tail_ = -1, n_free_ = 0;

  struct Content {
    BlockHash parent;
    std::vector<int32_t> tokens;
  };
  std::vector<bool> has_hash_;
  std::vector<BlockHash> hash_;
  std::vector<Content> content_;  // verified on lookup, so a hash collision is never a hit
  std::unordered_multimap<BlockHash, int> by_hash_;
};

}  // namespace tessera
