#include "tokenizer/bpe.h"

#include <optional>

#include "core/error.h"
#include "tokenizer/merge.h"
#include "tokenizer/unicode.h"

namespace tessera {

BpeTokenizer::BpeTokenizer(const VocabData& v) {
  pre_tok_ = std::make_unique<PreTokenizer>(v.pre);
  ignore_merges_ = pre_tok_->ignore_merges();
  // llama.cpp's defaults for BPE vocabularies: BOS = EOS = 11 (GPT-NeoX-era files), which
  // drop out when the vocabulary is smaller; no unknown token.
  Defaults d;
  d.bos = pre_tok_->has_bos() ? 11 : -1;
  d.eos = 11;
  d.unk = -1;
  d.add_bos = pre_tok_->add_bos();
  d.add_eos = false;
  d.add_space_prefix = false;
  load_vocab(v, d);

  if (v.merges.empty()) throw Error("tokenizer: BPE vocabulary has no tokenizer.ggml.merges");
  ranks_.reserve(v.merges.size());
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const std::string& m = v.merges[i];
    // The separator is the first space after the first byte (a left part may itself
    // start with a space in non-byte-level vocabularies).
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (sp == std::string::npos || sp + 1 >= m.size()) {
      throw Error("tokenizer: merge " + std::to_string(i) + " ('" + m +
                  "') is not of the form 'left right'");
    }
    ranks_.emplace(m, static_cast<int32_t>(i));  // first occurrence wins
  }
}

BpeTokenizer::~BpeTokenizer() = default;

int32_t BpeTokenizer::rank(std::string_view left, std::string_view right) const {
  std::string key;
  key.reserve(left.size() + 1 + right.size());
  key.append(left).push_back(' ');
  key.append(right);
  auto it = ranks_.find(key);
  return it == ranks_.end() ? -1 : it->second;
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special,
                                          bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && add_bos_) out.push_back(bos_);
  std::string encoded;
  for (const Fragment& f : partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      continue;
    }
    for (const std::string& word : pre_tok_->split(unicode::sanitize_utf8(f.text))) {
      encoded.clear();
      for (char c : word) encoded += unicode::byte_to_unicode(static_cast<uint8_t>(c));
      encode_word(encoded, out);
    }
  }
  if (add_special && add_eos_) out.push_back(eos_);
  return out;
}

void BpeTokenizer::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (int32_t id = find_token(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  tokenizer_detail::merge_pairs<int32_t>(
      word,
      [&](std::string_view left, std::string_view right) -> std::optional<int32_t> {
        const int32_t r = rank(left, right);
        return r >= 0 ? std::optional<int32_t>(r) : std::nullopt;
      },
      [&](std::string_view piece) {
        if (const int32_t id = find_token(piece); id >= 0) {
          out.push_back(id);
          return;
        }
        // A merge result missing from the vocabulary (inconsistent files): emit whatever
        // single-byte tokens exist, as llama.cpp does.
        for (char c : piece) {
          if (int32_t bid = find_token(std::string_view(&c, 1)); bid >= 0) out.push_back(bid);
        }
      });
}

std::string BpeTokenizer::token_to_piece(int32_t id, bool special) const {
  if (id < 0 || id >= n_vocab()) {
    throw Error("tokenizer: token id " + std::to_string(id) + " is outside the vocabulary");
  }
  const std::string& t = tokens_[id];
  switch (types_[id]) {
    case TokenType::CONTROL:
    case TokenType::UNKNOWN:
      return special ? t : std::string();
    case TokenType::USER_DEFINED:
      return t;
    case TokenType::NORMAL: {
      // Map each byte character back to its byte; a character outside the GPT-2
      // alphabet (malformed vocab) is kept as its own UTF-8.
      std::string out;
      out.reserve(t.size());
      for (size_t pos = 0; pos < t.size();) {
        const size_t start = pos;
        const uint32_t cp = unicode::next_codepoint(t, &pos);
        const int b = unicode::unicode_to_byte(cp);
        if (b >= 0) {
          out.push_back(static_cast<char>(b));
        } else {
          out.append(t, start, pos - start);
        }
      }
      return out;
    }
    case TokenType::BYTE: {
      const int b = unicode::parse_byte_token(t);
      return b < 0 ? t : std::string(1, static_cast<char>(b));
    }
    case TokenType::UNDEFINED:
    case TokenType::UNUSED:
      break;
  }
  return std::string();
}

}  // namespace tessera
