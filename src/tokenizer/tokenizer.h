// Tokenizers built from GGUF metadata (`tokenizer.ggml.*`):
//   model "llama" -> SentencePiece-style (scores, byte fallback, space prefix)
//   model "gpt2"  -> byte-level BPE (merges), pre-tokenizer chosen by tokenizer.ggml.pre
// Token ids are int32 indices into tokenizer.ggml.tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {
namespace gguf {
class File;
}

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

class Tokenizer {
 public:
  // Throws tessera::Error on missing/inconsistent metadata or an unsupported model/pre.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& f);
  virtual ~Tokenizer() = default;

  // add_special: add BOS/EOS as the metadata asks (add_bos_token / add_eos_token).
  // parse_special: text of control / user-defined tokens in `text` maps to those ids.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // Bytes one token contributes to output. Control tokens give "" unless `special`.
  // May be a partial UTF-8 sequence (byte tokens).
  virtual std::string token_to_piece(int32_t id, bool special = false) const = 0;
  // Concatenated pieces of `ids`.
  std::string decode(const std::vector<int32_t>& ids, bool special = false) const;

  virtual const char* kind() const = 0;  // "spm" or "bpe"
  const std::string& pre() const { return pre_; }  // tokenizer.ggml.pre ("" if absent)
  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  const std::string& token_text(int32_t id) const { return tokens_[id]; }
  TokenType token_type(int32_t id) const { return types_[id]; }
  int32_t bos_id() const { return bos_; }  // -1 when the vocab has none
  int32_t eos_id() const { return eos_; }
  int32_t eot_id() const { return eot_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // End-of-generation: EOS, EOT and other end-of-turn tokens the vocab marks.
  bool is_eog(int32_t id) const;

 protected:
  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  std::string pre_;
  int32_t bos_ = -1, eos_ = -1, eot_ = -1, unk_ = -1, pad_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::vector<int32_t> eog_ids_;
};

}  // namespace tessera
