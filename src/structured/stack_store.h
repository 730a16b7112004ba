// Pushdown states of a Grammar, interned so that equal states are equal integers.
//
// A stack is a linked list of frames, top first; each frame is a grammar position:
//   top frame:    the BYTES element the next byte must match (after normalization)
//   lower frames: return addresses, the position after a RULE reference
// Frames are hash-consed nodes {pos, parent}, so two stacks are equal iff their node ids
// are. A matcher state is a set of stacks (the grammar may be ambiguous), interned the
// same way; byte transitions between sets are memoized, so walking the same bytes twice
// (a vocabulary trie, a second request through the same rules) costs a hash lookup.
//
// Two pseudo-stacks:
//   kEmpty:  the stack popped its last frame: the input so far is a complete sentence;
//   kBottom: (truncated stacks, token_mask.h) popped below the frames it was built from;
//            what may follow depends on frames it does not know.
// Right recursion is a tail call: a RULE reference that ends its alternative pushes no
// return frame, so `x*` and `x{0,n}` keep stacks flat.
#pragma once
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "structured/grammar.h"

namespace tessera::structured {

class StackStore {
 public:
  static constexpr int32_t kEmpty = -1;
  static constexpr int32_t kBottom = -2;
  static constexpr int32_t kDead = -1;  // a set id: no stack survived

  explicit StackStore(const Grammar& g) : g_(g) {}

  const Grammar& grammar() const { return g_; }
  // The frame node {pos, parent} (parent: a node id, kEmpty or kBottom).
  int32_t node(uint32_t pos, int32_t parent);
  uint32_t pos(int32_t node) const { return nodes_[node].pos; }
  int32_t parent(int32_t node) const { return nodes_[node].parent; }

  // The set of normalized stacks that starting at `pos` with return `parent` expands to.
  int32_t expand(uint32_t pos, int32_t parent);
  // Set of the root rule's alternatives (the start state).
  int32_t initial();
  // A set holding exactly the given normalized stacks.
  int32_t singleton(int32_t stack);
  // The set after reading `byte`, or kDead. Memoized.
  int32_t advance(int32_t set, uint8_t byte);
  // Advances through `bytes`; kDead as soon as no stack survives.
  int32_t advance(int32_t set, std::string_view bytes);

  const std::vector<int32_t>& stacks(int32_t set) const { return sets_[set]; }
  bool accepting(int32_t set) const { return flags_[set] & kHasEmpty; }
  bool popped(int32_t set) const { return flags_[set] & kHasBottom; }
  // Only kEmpty: nothing may follow.
  bool complete(int32_t set) const { return sets_[set].size() == 1 && sets_[set][0] == kEmpty; }
  size_t n_nodes() const { return nodes_.size(); }
  size_t n_sets() const { return sets_.size(); }

  // Cap on stacks in one set; an ambiguous grammar beyond it keeps the first ones (still
  // sound: each kept stack is a parse of the input).
  static constexpr size_t kMaxStacks = 4096;

 private:
  static constexpr uint8_t kHasEmpty = 1, kHasBottom = 2;
  struct Node {
    uint32_t pos;
    int32_t parent;
  };
  // Appends the normalized stacks of `stack` (a node whose element may be RULE or END).
  void normalize(int32_t stack, std::vector<int32_t>& out);
  int32_t intern(std::vector<int32_t>& stacks);

  struct VecHash {
    size_t operator()(const std::vector<int32_t>& v) const {
      uint64_t h = 1469598103934665603ull;
      for (int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
      return static_cast<size_t>(h);
    }
  };

  const Grammar& g_;
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, int32_t> node_ids_;
  std::vector<std::vector<int32_t>> sets_;
  std::vector<uint8_t> flags_;
  std::unordered_map<std::vector<int32_t>, int32_t, VecHash> set_ids_;
  std::unordered_map<uint64_t, int32_t> trans_;  // (set << 8 | byte) -> set or kDead
  // Scratch for normalize.
  std::vector<int32_t> work_;
  std::unordered_map<int32_t, uint8_t> seen_;
  int32_t initial_ = -3;
};

}  // namespace tessera::structured
