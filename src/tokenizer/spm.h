// SentencePiece-style tokenizer for GGUF vocabularies with tokenizer.ggml.model = "llama".
#pragma once
#include <array>

#include "tokenizer/tokenizer.h"

namespace tessera {

// Encoding: spaces become U+2581 ("▁"), a "▁" is prefixed to text that starts the input
// or follows a special token (add_space_prefix), then adjacent symbols (initially single
// UTF-8 characters) are merged greedily: always the pair whose concatenation is the
// highest-scoring vocabulary token, leftmost on ties. Symbols that end up outside the
// vocabulary are emitted as byte tokens <0xXX> (or unk when the vocab lacks them).
class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(const VocabData& v);

  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::string token_to_piece(int32_t id, bool special = false) const override;
  const char* kind() const override { return "spm"; }

 private:
  // Appends the tokens of `text` (whitespace already escaped to U+2581).
  void encode_escaped(std::string_view text, std::vector<int32_t>& out) const;

  std::array<int32_t, 256> byte_ids_;  // token for each byte value, -1 if none
};

}  // namespace tessera
