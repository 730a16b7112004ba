// Tokenizers built from GGUF metadata (`tokenizer.ggml.*`):
//   model "llama" -> SentencePiece-style (scores, byte fallback, space prefix)
//   model "gpt2"  -> byte-level BPE (merges), pre-tokenizer chosen by tokenizer.ggml.pre
//   model "bert"  -> WordPiece (BERT's basic tokenization, then greedy longest match)
// Token ids are int32 indices into tokenizer.ggml.tokens.
//
// Behaviour follows llama.cpp's vocabulary code (defaults for absent keys, special-token
// partitioning, end-of-generation detection) so that both produce the same ids.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tessera {
namespace gguf {
class File;
class Source;
}  // namespace gguf

// tokenizer.ggml.token_type values
enum class TokenType : int32_t {
  UNDEFINED = 0,
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
};

// BERT's text normalization before WordPiece (Hugging Face's BertNormalizer), stored as
// tokenizer.wordpiece.* keys. A vocabulary without them (llama.cpp's bert GGUF files) gets
// these defaults: BERT-uncased's.
struct WordPieceOptions {
  bool clean_text = true;     // drop control characters, map whitespace to ' '
  bool chinese_chars = true;  // put spaces around CJK ideographs
  bool strip_accents = true;  // NFD, then drop nonspacing marks
  bool lowercase = true;
  int64_t max_chars_per_word = 100;  // longer words become [UNK]
};

// The `tokenizer.ggml.*` metadata, decoded but not yet checked. from_gguf fills it from
// a file; tests and converters may fill it directly. Absent keys stay empty / nullopt.
struct VocabData {
  std::string model;                // tokenizer.ggml.model: "llama" or "gpt2"
  std::string pre;                  // tokenizer.ggml.pre
  std::string name;                 // general.name (one model family needs it, see .cpp)
  std::vector<std::string> tokens;  // [n_vocab]
  std::vector<float> scores;        // [n_vocab] or empty
  std::vector<int32_t> types;       // [n_vocab] TokenType values, or empty (all NORMAL)
  std::vector<std::string> merges;  // BPE only: "left right", in rank order
  std::optional<int64_t> bos_id, eos_id, eot_id, eom_id, unk_id, pad_id;
  std::optional<int64_t> fim_pad_id, fim_rep_id, fim_sep_id;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  // tokenizer.ggml.eog_token_ids: extra end-of-generation ids (e.g. every eos_token_id of
  // a Hugging Face generation_config.json), added to those found by text.
  std::vector<int64_t> eog_ids;
  // WordPiece ("bert"): [CLS] (the BOS when bos_id is absent), [SEP], [MASK], normalization.
  std::optional<int64_t> cls_id, sep_id, mask_id;
  std::optional<WordPieceOptions> wordpiece;
};

class Tokenizer {
 public:
  // Throws tessera::Error on missing/inconsistent metadata or an unsupported model/pre.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::Source& f);
  // Same checks as from_gguf, on metadata already read.
  static std::unique_ptr<Tokenizer> from_vocab(const VocabData& v);
  virtual ~Tokenizer() = default;

  // add_special: add BOS/EOS as the metadata asks (add_bos_token / add_eos_token).
  // parse_special: text of control / user-defined tokens in `text` maps to those ids.
  // (User-defined tokens are matched even when parse_special is false, as in llama.cpp
  // and Hugging Face tokenizers.)
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // Bytes one token contributes to output. Control tokens give "" unless `special`.
  // May be a partial UTF-8 sequence (byte tokens).
  virtual std::string token_to_piece(int32_t id, bool special = false) const = 0;
  // Concatenated pieces of `ids`. (No clean-up: an SPM encoding that added the space
  // prefix decodes with that leading space.)
  std::string decode(const std::vector<int32_t>& ids, bool special = false) const;

  virtual const char* kind() const = 0;            // "spm", "bpe" or "wpm"
  const std::string& pre() const { return pre_; }  // tokenizer.ggml.pre ("" if absent)
  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  const std::string& token_text(int32_t id) const { return tokens_[id]; }
  TokenType token_type(int32_t id) const { return types_[id]; }
  int32_t bos_id() const { return bos_; }  // -1 when the vocab has none
  int32_t eos_id() const { return eos_; }
  int32_t eot_id() const { return eot_; }
  int32_t unk_id() const { return unk_; }
  int32_t pad_id() const { return pad_; }
  int32_t sep_id() const { return sep_; }  // -1 when the vocab has none
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // End-of-generation: EOS, EOT and other end-of-turn tokens the vocab marks.
  bool is_eog(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }  // ascending
  // Id of the token whose text is exactly `text`, or -1.
  int32_t find_token(std::string_view text) const;

 protected:
  // Per-model defaults that apply before the metadata keys are read.
  struct Defaults {
    int32_t bos = -1, eos = -1, unk = -1, sep = -1;
    bool add_bos = false, add_eos = false, add_space_prefix = false;
  };
  // A piece of the input after special-token partitioning: either a token id
  // (text empty) or raw text still to be tokenized (token == -1).
  struct Fragment {
    int32_t token;
    std::string_view text;
  };

  // Fills the members below from `v`, validating sizes and ids. Throws Error.
  void load_vocab(const VocabData& v, const Defaults& d);
  // Splits `text` on the texts of special tokens, longest token first (control and
  // unknown tokens only when parse_special).
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  // True for tokens token_to_piece hides unless `special` (control / unknown).
  bool is_hidden_special(int32_t id) const;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;  // as in the metadata, with llama.cpp's overrides applied
  std::vector<float> scores_;     // [n_vocab]; 0 when the metadata has none
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> token_to_id_;
  std::string pre_;
  int32_t bos_ = -1, eos_ = -1, eot_ = -1, unk_ = -1, pad_ = -1, sep_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  std::vector<int32_t> eog_ids_;

 private:
  void find_special_tokens(const VocabData& v);

  // Tokens matched by partition(): control, user-defined and unknown, longest first.
  std::vector<int32_t> special_ids_;
  // Whitespace to strip around a matched special token ("lstrip"/"rstrip").
  std::vector<uint8_t> strip_;  // [n_vocab] bit 0: left, bit 1: right
};

}  // namespace tessera
