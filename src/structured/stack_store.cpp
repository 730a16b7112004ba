#include "structured/stack_store.h"

#include <algorithm>

namespace tessera::structured {

int32_t StackStore::node(uint32_t pos, int32_t parent) {
  const uint64_t key = (static_cast<uint64_t>(pos) << 32) | static_cast<uint32_t>(parent);
  auto [it, fresh] = node_ids_.try_emplace(key, static_cast<int32_t>(nodes_.size()));
  if (fresh) nodes_.push_back({pos, parent});
  return it->second;
}

// Iterative (a chain of nullable rules can be thousands deep) with a visited set, so each
// frame node is expanded once per call however many paths reach it.
void StackStore::normalize(int32_t start, std::vector<int32_t>& out) {
  work_.clear();
  seen_.clear();
  work_.push_back(start);
  while (!work_.empty()) {
    const int32_t s = work_.back();
    work_.pop_back();
    if (!seen_.emplace(s, 1).second) continue;
    if (s < 0) {  // kEmpty / kBottom
      out.push_back(s);
      continue;
    }
    const Node n = nodes_[s];
    const Element& e = g_.elems[n.pos];
    if (e.kind == Element::BYTES) {
      out.push_back(s);
    } else if (e.kind == Element::END) {
      work_.push_back(n.parent);
    } else {
      const bool tail = g_.elems[n.pos + 1].kind == Element::END;
      const int32_t ret = tail ? n.parent : node(n.pos + 1, n.parent);
      const auto& alts = g_.rules[e.index].alts;
      for (auto it = alts.rbegin(); it != alts.rend(); ++it) work_.push_back(node(*it, ret));
    }
  }
}

int32_t StackStore::intern(std::vector<int32_t>& stacks) {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  if (stacks.empty()) return kDead;
  if (stacks.size() > kMaxStacks) stacks.resize(kMaxStacks);
  auto it = set_ids_.find(stacks);
  if (it != set_ids_.end()) return it->second;
  const int32_t id = static_cast<int32_t>(sets_.size());
  uint8_t f = 0;
  for (int32_t s : stacks) {
    if (s == kEmpty) f |= kHasEmpty;
    if (s == kBottom) f |= kHasBottom;
  }
  sets_.push_back(stacks);
  flags_.push_back(f);
  set_ids_.emplace(stacks, id);
  return id;
}

int32_t StackStore::expand(uint32_t pos, int32_t parent) {
  std::vector<int32_t> out;
  normalize(node(pos, parent), out);
  return intern(out);
}

int32_t StackStore::initial() {
  if (initial_ != -3) return initial_;
  std::vector<int32_t> out;
  for (uint32_t a : g_.rules[g_.root].alts) normalize(node(a, kEmpty), out);
  initial_ = intern(out);
  return initial_;
}

int32_t StackStore::singleton(int32_t stack) {
  std::vector<int32_t> v{stack};
  return intern(v);
}

int32_t StackStore::advance(int32_t set, uint8_t byte) {
  const uint64_t key = (static_cast<uint64_t>(set) << 8) | byte;
  if (auto it = trans_.find(key); it != trans_.end()) return it->second;
  std::vector<int32_t> out;
  // Copy: normalize() may grow nodes_ and sets_ (not this set's vector, but be safe).
  const std::vector<int32_t> cur = sets_[set];
  for (int32_t s : cur) {
    if (s < 0) continue;
    const Node n = nodes_[s];
    if (!g_.byte_sets[g_.elems[n.pos].index].has(byte)) continue;
    normalize(node(n.pos + 1, n.parent), out);
  }
  const int32_t r = intern(out);
  trans_.emplace(key, r);
  return r;
}

int32_t StackStore::advance(int32_t set, std::string_view bytes) {
  for (const char c : bytes) {
    if (set == kDead) return kDead;
    set = advance(set, static_cast<uint8_t>(c));
  }
  return set;
}

}  // namespace tessera::structured
