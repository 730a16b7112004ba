// Byte-level BPE tokenizer for GGUF vocabularies with tokenizer.ggml.model = "gpt2".
#pragma once
#include <memory>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace tessera {

// Encoding: the pre-tokenizer splits text into words; each word's bytes are mapped to
// GPT-2 "byte characters" (unicode::byte_to_unicode), cut into characters, and adjacent
// pairs are merged lowest merge rank first (leftmost on ties) until no listed merge
// applies. Vocabulary tokens are stored in the byte-character alphabet, so decoding maps
// each character of a token back to its byte.
class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(const VocabData& v);
  ~BpeTokenizer() override;

  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::string token_to_piece(int32_t id, bool special = false) const override;
  const char* kind() const override { return "bpe"; }

 private:
  // Appends the tokens of one pre-tokenized word (already byte-encoded).
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;
  // Merge rank of (left, right), or -1 when the pair is not a merge.
  int32_t rank(std::string_view left, std::string_view right) const;

  std::unique_ptr<PreTokenizer> pre_tok_;
  // "left right" -> rank. Byte-encoded symbols never contain a raw space (U+0020 maps
  // to U+0120), so the joined key is unambiguous.
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ranks_;
  bool ignore_merges_ = false;
};

}  // namespace tessera
