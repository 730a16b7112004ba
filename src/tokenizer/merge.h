// Greedy pairwise merging, the loop BPE and SentencePiece share: the text starts as its
// UTF-8 characters; the adjacent pair with the best priority (ties: the leftmost) is merged
// into one symbol, and again, until no adjacent pair has a priority. BPE ranks pairs by
// their merge rank, SentencePiece by the score of the token they spell.
#pragma once
#include <cstddef>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

#include "tokenizer/unicode.h"

namespace tessera::tokenizer_detail {

// priority(left, right) -> std::optional<P>: nullopt when the pair does not merge, else its
// priority, smaller first. emit(piece) is called for each final symbol, left to right.
template <typename P, typename PriorityFn, typename EmitFn>
void merge_pairs(std::string_view text, PriorityFn&& priority, EmitFn&& emit) {
  if (text.empty()) return;
  // Byte ranges of the text linked by prev/next (-1 at the ends); a merge grows the left
  // symbol and leaves the right one empty (n == 0).
  struct Symbol {
    int prev, next;
    size_t start, n;
  };
  struct Pair {
    P priority;
    int left, right;
    size_t left_n, right_n;  // sizes when queued: a pair whose side has changed is stale
  };
  struct Later {  // the priority queue pops the smallest priority, then the leftmost pair
    bool operator()(const Pair& a, const Pair& b) const {
      return b.priority < a.priority || (!(a.priority < b.priority) && a.left > b.left);
    }
  };
  std::vector<Symbol> sym;
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(unicode::utf8_len(text[off]), text.size() - off);
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, off + len == text.size() ? -1 : idx + 1, off, len});
    off += len;
  }
  std::priority_queue<Pair, std::vector<Pair>, Later> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::optional<P> p = priority(text.substr(sym[left].start, sym[left].n),
                                        text.substr(sym[right].start, sym[right].n));
    if (p) queue.push({*p, left, right, sym[left].n, sym[right].n});
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Pair b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n != b.left_n || r.n != b.right_n || l.n == 0 || r.n == 0 || l.next != b.right)
      continue;  // stale: one side has changed since this pair was queued
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = 0; i != -1; i = sym[i].next) emit(text.substr(sym[i].start, sym[i].n));
}

}  // namespace tessera::tokenizer_detail
