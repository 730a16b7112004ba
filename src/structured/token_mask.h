// Grammars over a tokenizer's vocabulary: which tokens may come next.
//
// TokenVocab: each token's bytes (what it adds to the output text) in a byte trie.
// Tokens that add no text (control tokens, unless listed as special literals) are never
// allowed; end-of-generation tokens are allowed exactly when the grammar is complete.
//
// CompiledGrammar: a Grammar bound to a TokenVocab, with a mask cache keyed by the top of
// a stack. For a stack, the key is its frames from the top down to and including the
// first frame of a user-named rule (at most kMaxKeyFrames): everything generated rules
// (repetitions, character classes, groups) push on top of one named rule's position. A
// walk of the vocabulary trie from just those frames (stack bottom unknown: kBottom)
// sorts every token into
//   accepted:  some path reads all its bytes without leaving the key frames (or leaves
//              them exactly at its last byte) -- allowed whatever lies below;
//   uncertain: every live path leaves the key frames before the token's end -- it
//              depends on the frames below, checked at run time against the full stack;
//   rejected:  the rest, whatever lies below.
// Entries are computed once per key and grammar and shared by every request using it.
//
// GrammarMatcher: one sequence's state (a set of stacks, in its own StackStore), with
// token acceptance, rollback and the token mask.
#pragma once
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "structured/grammar.h"
#include "structured/stack_store.h"

namespace tessera {
class Tokenizer;
}

namespace tessera::structured {

class TokenVocab {
 public:
  // `special_literals`: texts of control / user-defined tokens the grammar may spell with
  // that one token (e.g. "<tool_call>"); such tokens get their text as bytes.
  TokenVocab(const Tokenizer& tok, const std::vector<std::string>& special_literals = {});
  // For tests: token i has bytes tokens[i] ("" never allowed); eog ids end generation.
  TokenVocab(std::vector<std::string> tokens, std::vector<int32_t> eog);

  int32_t n_vocab() const { return static_cast<int32_t>(bytes_.size()); }
  const std::string& bytes(int32_t id) const { return bytes_[id]; }
  const std::vector<int32_t>& eog() const { return eog_; }

  // The trie: node 0 is the root (no byte). Children of a node are contiguous, in byte
  // order; tokens of a node's subtree are a contiguous range of `sorted`.
  struct TrieNode {
    uint8_t byte = 0;
    uint32_t child_begin = 0, child_end = 0;
    uint32_t tok_begin = 0, tok_end = 0;  // subtree tokens: sorted[tok_begin, tok_end)
    uint32_t n_exact = 0;                 // sorted[tok_begin, +n_exact): end exactly here
  };
  const std::vector<TrieNode>& trie() const { return trie_; }
  const std::vector<int32_t>& sorted() const { return sorted_; }

 private:
  void build();

  std::vector<std::string> bytes_;  // [n_vocab]
  std::vector<int32_t> eog_;
  std::vector<TrieNode> trie_;
  std::vector<int32_t> sorted_;  // ids of tokens with bytes, by bytes
};

// Bits: token t allowed iff bit t is set. [ceil(n_vocab / 64)] words.
using TokenBitmask = std::vector<uint64_t>;

class CompiledGrammar {
 public:
  CompiledGrammar(Grammar g, std::shared_ptr<const TokenVocab> vocab);

  const Grammar& grammar() const { return g_; }
  const TokenVocab& vocab() const { return *vocab_; }
  int32_t n_words() const { return (vocab_->n_vocab() + 63) / 64; }

  struct MaskEntry {
    TokenBitmask accepted;
    std::vector<int32_t> uncertain;
  };
  static constexpr int kMaxKeyFrames = 32;
  // The entry for a key (frame positions, top first); computed on first use.
  std::shared_ptr<const MaskEntry> entry(const std::vector<uint32_t>& key) const;
  // Computes the entries of every key a named rule's positions start (what requests will
  // look up), so that requests find them ready; stops after `max_seconds` (a huge grammar
  // leaves the rest to be computed on first use). Returns the number of entries computed.
  size_t precompute(double max_seconds = 2.0) const;
  size_t n_entries() const;
  // min_completion_bytes of the grammar, per position.
  uint32_t min_bytes(uint32_t pos) const { return min_bytes_[pos]; }

 private:
  std::shared_ptr<const MaskEntry> compute(const std::vector<uint32_t>& key) const;

  struct KeyHash {
    size_t operator()(const std::vector<uint32_t>& v) const {
      uint64_t h = 1469598103934665603ull;
      for (uint32_t x : v) h = (h ^ x) * 1099511628211ull;
      return static_cast<size_t>(h);
    }
  };
  Grammar g_;
  std::shared_ptr<const TokenVocab> vocab_;
  std::vector<uint32_t> min_bytes_;  // [g_.size()]
  mutable std::shared_mutex mu_;
  mutable std::unordered_map<std::vector<uint32_t>, std::shared_ptr<const MaskEntry>, KeyHash>
      cache_;
};

class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> g);

  // Reads a token's bytes; false (state unchanged) when the grammar rejects them.
  bool accept_token(int32_t id);
  bool accept_bytes(std::string_view bytes);
  // Undoes the last n accepted tokens / byte strings (n <= n_accepted()).
  void rollback(int n);
  int n_accepted() const { return static_cast<int>(history_.size()) - 1; }

  // The input so far is a sentence (end-of-generation allowed).
  bool accepting() const { return store_.accepting(state()); }
  // Nothing may follow: generation must end here.
  bool complete() const { return store_.complete(state()); }

  // The mask for the next token (fast path: cache entries + checks of uncertain tokens).
  void fill_mask(TokenBitmask& mask);
  // The same mask by brute force: every token's bytes read from the current state. The
  // reference the fast path is tested against.
  void fill_mask_reference(TokenBitmask& mask);
  // Whether the token would be accepted (no state change).
  bool allows(int32_t id);

  // The fewest bytes that make the input so far a sentence (0 when accepting()), and the
  // same after token `id` (no state change); kNoCompletion when no sentence can follow
  // (or the token is rejected). An end-of-generation token counts 0 when accepting.
  uint32_t min_bytes_to_accept();
  uint32_t min_bytes_after(int32_t id);

  const CompiledGrammar& compiled() const { return *g_; }

 private:
  int32_t state() const { return history_.back(); }
  std::vector<uint32_t> key_of(int32_t stack) const;
  uint32_t min_bytes_of(int32_t set);

  std::shared_ptr<const CompiledGrammar> g_;
  StackStore store_;
  std::vector<int32_t> history_;                          // set ids; front: initial state
  std::unordered_map<int32_t, uint32_t> min_bytes_memo_;  // set id -> min_bytes_of
};

// Sets logits of tokens not in `mask` to -infinity. Returns the number of allowed tokens.
int apply_token_mask(const TokenBitmask& mask, float* logits, int n_vocab);

}  // namespace tessera::structured
