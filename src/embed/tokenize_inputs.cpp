// Tokenization of embedding / scoring inputs. See tokenize_inputs.h.
#include "embed/tokenize_inputs.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"

namespace tessera {

namespace {

[[noreturn]] void too_long(size_t n, int limit) {
  throw Error("the input has " + std::to_string(n) + " tokens, more than the maximum of " +
              std::to_string(limit) + " (ask for truncation to cut it)");
}

}  // namespace

EmbedInput tokenize_text(const Tokenizer& tok, std::string_view text, int limit, bool truncate) {
  // The special tokens the tokenizer adds around any text, split into those before it (BOS,
  // [CLS]) and after it (EOS, [SEP]).
  const std::vector<int32_t> specials = tok.encode("", true, true);
  const size_t n_prefix =
      tok.add_bos() && !specials.empty() && specials.front() == tok.bos_id() ? 1 : 0;
  std::vector<int32_t> content = tok.encode(text, false, true);
  EmbedInput in;
  const size_t total = content.size() + specials.size();
  if (total > static_cast<size_t>(limit)) {
    if (!truncate || static_cast<size_t>(limit) <= specials.size()) too_long(total, limit);
    content.resize(limit - specials.size());
  }
  in.tokens.assign(specials.begin(), specials.begin() + n_prefix);
  in.tokens.insert(in.tokens.end(), content.begin(), content.end());
  in.tokens.insert(in.tokens.end(), specials.begin() + n_prefix, specials.end());
  return in;
}

EmbedInput tokenize_pair(const Tokenizer& tok, std::string_view a, std::string_view b, int limit,
                         bool truncate) {
  const bool wordpiece = std::strcmp(tok.kind(), "wpm") == 0;
  const int32_t open = tok.bos_id();
  const int32_t close = wordpiece ? tok.sep_id() : tok.eos_id();
  if (open < 0 || close < 0)
    throw Error("this model's vocabulary has no tokens to join a query and a document");
  const size_t n_special = wordpiece ? 3 : 4;
  std::vector<int32_t> ta = tok.encode(a, false, true), tb = tok.encode(b, false, true);
  const size_t total = ta.size() + tb.size() + n_special;
  if (total > static_cast<size_t>(limit)) {
    if (!truncate || static_cast<size_t>(limit) < n_special + 2) too_long(total, limit);
    // Hugging Face's "longest_first": the shorter text keeps its tokens when the longer
    // one can absorb the whole cut, else each keeps about half of what is left.
    const size_t budget = limit - n_special;
    size_t n1 = ta.size(), n2 = tb.size();
    const bool swap = n1 > n2;
    if (swap) std::swap(n1, n2);
    n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
    if (n1 + n2 > budget) {
      n1 = budget / 2;
      n2 = n1 + budget % 2;
    }
    if (swap) std::swap(n1, n2);
    ta.resize(std::min(ta.size(), n1));
    tb.resize(std::min(tb.size(), n2));
  }
  EmbedInput in;
  in.tokens.push_back(open);
  in.tokens.insert(in.tokens.end(), ta.begin(), ta.end());
  in.tokens.push_back(close);
  if (!wordpiece) in.tokens.push_back(close);
  const size_t first = in.tokens.size();
  in.tokens.insert(in.tokens.end(), tb.begin(), tb.end());
  in.tokens.push_back(close);
  if (wordpiece) {
    in.types.assign(in.tokens.size(), 0);
    std::fill(in.types.begin() + static_cast<std::ptrdiff_t>(first), in.types.end(), 1);
  }
  return in;
}

}  // namespace tessera
