#include "structured/token_mask.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <mutex>
#include <tuple>

#include "tokenizer/tokenizer.h"

namespace tessera::structured {

// ---------------------------------------------------------------------------------------
// TokenVocab

TokenVocab::TokenVocab(const Tokenizer& tok, const std::vector<std::string>& special_literals) {
  const int32_t n = tok.n_vocab();
  bytes_.resize(n);
  for (int32_t id = 0; id < n; ++id) {
    if (tok.is_eog(id)) continue;
    const TokenType t = tok.token_type(id);
    if (t == TokenType::CONTROL || t == TokenType::UNKNOWN || t == TokenType::UNUSED) {
      const std::string& text = tok.token_text(id);
      if (std::find(special_literals.begin(), special_literals.end(), text) !=
          special_literals.end())
        bytes_[id] = text;
      continue;
    }
    bytes_[id] = tok.token_to_piece(id, false);
  }
  eog_ = tok.eog_ids();
  build();
}

TokenVocab::TokenVocab(std::vector<std::string> tokens, std::vector<int32_t> eog)
    : bytes_(std::move(tokens)), eog_(std::move(eog)) {
  for (int32_t e : eog_) bytes_[e].clear();
  build();
}

void TokenVocab::build() {
  for (int32_t id = 0; id < n_vocab(); ++id)
    if (!bytes_[id].empty()) sorted_.push_back(id);
  std::sort(sorted_.begin(), sorted_.end(),
            [&](int32_t a, int32_t b) { return std::tie(bytes_[a], a) < std::tie(bytes_[b], b); });
  // Breadth first, so each node's children are pushed together (contiguous).
  struct Todo {
    uint32_t node, begin, end, depth;
  };
  std::deque<Todo> todo;
  trie_.push_back({0, 0, 0, 0, static_cast<uint32_t>(sorted_.size()), 0});
  todo.push_back({0, 0, static_cast<uint32_t>(sorted_.size()), 0});
  auto byte_at = [&](uint32_t i, uint32_t d) {
    return static_cast<uint8_t>(bytes_[sorted_[i]][d]);
  };
  while (!todo.empty()) {
    const Todo t = todo.front();
    todo.pop_front();
    uint32_t i = t.begin;
    while (i < t.end && bytes_[sorted_[i]].size() == t.depth) ++i;
    trie_[t.node].n_exact = i - t.begin;
    trie_[t.node].child_begin = static_cast<uint32_t>(trie_.size());
    while (i < t.end) {
      const uint8_t c = byte_at(i, t.depth);
      uint32_t j = i;
      while (j < t.end && byte_at(j, t.depth) == c) ++j;
      const uint32_t idx = static_cast<uint32_t>(trie_.size());
      trie_.push_back({c, 0, 0, i, j, 0});
      todo.push_back({idx, i, j, t.depth + 1});
      i = j;
    }
    trie_[t.node].child_end = static_cast<uint32_t>(trie_.size());
  }
}

// ---------------------------------------------------------------------------------------
// CompiledGrammar

namespace {

void set_bit(TokenBitmask& m, int32_t id) {
  m[id >> 6] |= uint64_t{1} << (id & 63);
}
bool get_bit(const TokenBitmask& m, int32_t id) {
  return (m[id >> 6] >> (id & 63)) & 1;
}

// Key frames of `stack` in `st`: top first, down to the first frame of a named rule.
std::vector<uint32_t> stack_key(const StackStore& st, int32_t stack) {
  const Grammar& g = st.grammar();
  std::vector<uint32_t> key;
  for (int32_t s = stack; s >= 0; s = st.parent(s)) {
    key.push_back(st.pos(s));
    if (!g.rules[g.rule_of[st.pos(s)]].generated ||
        static_cast<int>(key.size()) >= CompiledGrammar::kMaxKeyFrames)
      break;
  }
  return key;
}

}  // namespace

CompiledGrammar::CompiledGrammar(Grammar g, std::shared_ptr<const TokenVocab> vocab)
    : g_(std::move(g)), vocab_(std::move(vocab)), min_bytes_(min_completion_bytes(g_)) {}

size_t CompiledGrammar::n_entries() const {
  std::shared_lock lock(mu_);
  return cache_.size();
}

std::shared_ptr<const CompiledGrammar::MaskEntry> CompiledGrammar::entry(
    const std::vector<uint32_t>& key) const {
  {
    std::shared_lock lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  }
  auto e = compute(key);
  std::unique_lock lock(mu_);
  return cache_.emplace(key, std::move(e)).first->second;
}

std::shared_ptr<const CompiledGrammar::MaskEntry> CompiledGrammar::compute(
    const std::vector<uint32_t>& key) const {
  StackStore st(g_);
  int32_t top = StackStore::kBottom;
  for (auto it = key.rbegin(); it != key.rend(); ++it) top = st.node(*it, top);
  auto out = std::make_shared<MaskEntry>();
  out->accepted.assign(n_words(), 0);
  const auto& trie = vocab_->trie();
  const auto& sorted = vocab_->sorted();
  struct Item {
    uint32_t node;
    int32_t set;
    bool uncertain;
  };
  std::vector<Item> todo;
  const int32_t start = st.singleton(top);
  for (uint32_t c = trie[0].child_begin; c < trie[0].child_end; ++c)
    todo.push_back({c, start, false});
  while (!todo.empty()) {
    const Item it = todo.back();
    todo.pop_back();
    const TokenVocab::TrieNode& n = trie[it.node];
    // A path that left the key frames before this byte may go on below them.
    const bool unc = it.uncertain || st.popped(it.set);
    const int32_t next = st.advance(it.set, n.byte);
    if (next == StackStore::kDead) {
      if (unc)
        for (uint32_t i = n.tok_begin; i < n.tok_end; ++i) out->uncertain.push_back(sorted[i]);
      continue;
    }
    for (uint32_t i = n.tok_begin; i < n.tok_begin + n.n_exact; ++i)
      set_bit(out->accepted, sorted[i]);
    for (uint32_t c = n.child_begin; c < n.child_end; ++c) todo.push_back({c, next, unc});
  }
  std::sort(out->uncertain.begin(), out->uncertain.end());
  return out;
}

size_t CompiledGrammar::precompute(double max_seconds) const {
  const auto t0 = std::chrono::steady_clock::now();
  auto out_of_time = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >
           max_seconds;
  };
  StackStore st(g_);
  std::vector<std::vector<uint32_t>> keys;
  for (uint32_t r = 0; r < g_.rules.size() && !out_of_time(); ++r) {
    if (g_.rules[r].generated) continue;
    for (uint32_t a : g_.rules[r].alts)
      for (uint32_t p = a; g_.elems[p].kind != Element::END; ++p) {
        const int32_t set = st.expand(p, StackStore::kBottom);
        if (set == StackStore::kDead) continue;
        for (int32_t s : st.stacks(set)) {
          if (s < 0) continue;
          std::vector<uint32_t> k = stack_key(st, s);
          // Keys that reach the unknown bottom without a named frame depend on the caller;
          // requests compute those on first use.
          if (g_.rules[g_.rule_of[k.back()]].generated) continue;
          keys.push_back(std::move(k));
        }
      }
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  size_t n = 0;
  for (const auto& k : keys) {
    if (out_of_time()) break;
    entry(k);
    ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// GrammarMatcher

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> g)
    : g_(std::move(g)), store_(g_->grammar()) {
  history_.push_back(store_.initial());
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  const int32_t next = store_.advance(state(), bytes);
  if (next == StackStore::kDead) return false;
  history_.push_back(next);
  return true;
}

bool GrammarMatcher::accept_token(int32_t id) {
  if (id < 0 || id >= g_->vocab().n_vocab()) return false;
  const std::string& b = g_->vocab().bytes(id);
  if (b.empty()) return false;  // end-of-generation is the caller's, when accepting()
  return accept_bytes(b);
}

void GrammarMatcher::rollback(int n) {
  n = std::min(n, n_accepted());
  history_.resize(history_.size() - n);
}

bool GrammarMatcher::allows(int32_t id) {
  const TokenVocab& v = g_->vocab();
  if (id < 0 || id >= v.n_vocab()) return false;
  if (std::find(v.eog().begin(), v.eog().end(), id) != v.eog().end()) return accepting();
  const std::string& b = v.bytes(id);
  return !b.empty() && store_.advance(state(), b) != StackStore::kDead;
}

// A stack's frames each still need the rest of their alternative: the top frame its BYTES
// element onwards, a return frame what follows its rule reference. A set needs its
// cheapest stack.
uint32_t GrammarMatcher::min_bytes_of(int32_t set) {
  if (set == StackStore::kDead) return kNoCompletion;
  if (const auto it = min_bytes_memo_.find(set); it != min_bytes_memo_.end()) return it->second;
  uint64_t best = kNoCompletion;
  for (int32_t s : store_.stacks(set)) {
    uint64_t sum = 0;
    for (int32_t node = s; node >= 0 && sum < best; node = store_.parent(node))
      sum += g_->min_bytes(store_.pos(node));
    best = std::min(best, sum);
  }
  const auto out = static_cast<uint32_t>(std::min<uint64_t>(best, kNoCompletion));
  min_bytes_memo_.emplace(set, out);
  return out;
}

uint32_t GrammarMatcher::min_bytes_to_accept() {
  return min_bytes_of(state());
}

uint32_t GrammarMatcher::min_bytes_after(int32_t id) {
  const TokenVocab& v = g_->vocab();
  if (id < 0 || id >= v.n_vocab()) return kNoCompletion;
  if (std::find(v.eog().begin(), v.eog().end(), id) != v.eog().end())
    return accepting() ? 0 : kNoCompletion;
  const std::string& b = v.bytes(id);
  if (b.empty()) return kNoCompletion;
  return min_bytes_of(store_.advance(state(), b));
}

std::vector<uint32_t> GrammarMatcher::key_of(int32_t stack) const {
  return stack_key(store_, stack);
}

void GrammarMatcher::fill_mask(TokenBitmask& mask) {
  const int32_t nw = g_->n_words();
  mask.assign(nw, 0);
  const TokenVocab& v = g_->vocab();
  const int32_t set = state();
  // Copy: checking uncertain tokens interns new sets.
  const std::vector<int32_t> stacks = store_.stacks(set);
  for (int32_t s : stacks) {
    if (s < 0) continue;
    const auto e = g_->entry(key_of(s));
    for (int32_t w = 0; w < nw; ++w) mask[w] |= e->accepted[w];
    if (e->uncertain.empty()) continue;
    const int32_t single = store_.singleton(s);
    for (int32_t t : e->uncertain)
      if (!get_bit(mask, t) && store_.advance(single, v.bytes(t)) != StackStore::kDead)
        set_bit(mask, t);
  }
  if (store_.accepting(set))
    for (int32_t e : v.eog()) set_bit(mask, e);
}

void GrammarMatcher::fill_mask_reference(TokenBitmask& mask) {
  mask.assign(g_->n_words(), 0);
  for (int32_t id = 0; id < g_->vocab().n_vocab(); ++id)
    if (allows(id)) set_bit(mask, id);
}

int apply_token_mask(const TokenBitmask& mask, float* logits, int n_vocab) {
  const float ninf = -std::numeric_limits<float>::infinity();
  int n = 0;
  const int n_bits = static_cast<int>(mask.size()) * 64;  // ids past the vocabulary: never
  for (int id = 0; id < n_vocab; ++id) {
    if (id < n_bits && get_bit(mask, id))
      ++n;
    else
      logits[id] = ninf;
  }
  return n;
}

}  // namespace tessera::structured
