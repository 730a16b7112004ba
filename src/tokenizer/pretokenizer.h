// Pre-tokenizers for byte-level BPE: split text into words before BPE merging, using the
// regex list that belongs to a `tokenizer.ggml.pre` name (the same lists llama.cpp uses,
// taken from each model's tokenizer.json).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

class PreTokenizer {
 public:
  // `pre` is tokenizer.ggml.pre; "" selects "default" (llama.cpp does the same with a
  // warning). Throws tessera::Error for a name this build does not know.
  explicit PreTokenizer(std::string_view pre);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Splits valid UTF-8 `text` into words whose concatenation is `text`. Each regex of
  // the list is applied in turn to every piece produced by the previous one; both the
  // matches and the unmatched stretches between them become pieces, and lookarounds
  // see only the current piece.
  std::vector<std::string> split(std::string_view text) const;

  // Model flags that come with the pre-tokenizer name in llama.cpp.
  bool ignore_merges() const { return ignore_merges_; }  // whole-word vocab hits skip BPE
  bool add_bos() const { return add_bos_; }              // default for add_bos_token
  bool has_bos() const { return has_bos_; }              // false: no default BOS id

  // Every name accepted by the constructor.
  static std::vector<std::string> known_names();

 private:
  struct Regex;
  std::vector<std::unique_ptr<Regex>> regexes_;
  bool ignore_merges_ = false;
  bool add_bos_ = false;
  bool has_bos_ = true;
};

}  // namespace tessera
