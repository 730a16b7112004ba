// WordPiece tokenizer for GGUF vocabularies with tokenizer.ggml.model = "bert" (BERT and its
// relatives), producing the ids of Hugging Face's BertNormalizer + BertPreTokenizer +
// WordPiece pipeline:
//
//   1. special tokens ([CLS], [SEP], ...) are split off the raw text (partition)
//   2. normalize (WordPieceOptions): drop NUL, U+FFFD and control/format/private-use
//      characters, whitespace -> ' '; spaces around CJK ideographs; NFD and drop nonspacing
//      marks (accents); lowercase
//   3. pre-tokenize: split on whitespace, and isolate each punctuation character (Unicode
//      P* categories, and every ASCII punctuation or symbol)
//   4. each word: greedy longest match from the left; pieces after the first are
//      continuations ("##ing" in BERT's vocab.txt). A word with no full match, or longer
//      than max_chars_per_word characters, becomes [UNK].
//   5. add_special: [CLS] first, [SEP] last
//
// Vocabulary convention (llama.cpp's, so its files load unchanged): a word-initial piece is
// stored with the phantom-space prefix U+2581 ("▁hello"), a continuation piece bare
// ("llo" for "##llo"); control tokens ([CLS]) as they are.
#pragma once
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tessera {

namespace gguf {
class MemorySource;
}

class WpmTokenizer final : public Tokenizer {
 public:
  explicit WpmTokenizer(const VocabData& v);

  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::string token_to_piece(int32_t id, bool special = false) const override;
  const char* kind() const override { return "wpm"; }
  const WordPieceOptions& options() const { return opts_; }

  // Steps 2 and 3 above: the words of `text` (tests and diagnostics).
  std::vector<std::string> pre_tokenize(std::string_view text) const;

 private:
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;

  WordPieceOptions opts_;
  size_t max_token_bytes_ = 0;
};

// tokenizer.wordpiece.* metadata (absent keys keep WordPieceOptions' defaults).
WordPieceOptions read_wordpiece_options(const gguf::Source& f);
void write_wordpiece_options(const WordPieceOptions& o, gguf::MemorySource& out);

}  // namespace tessera
