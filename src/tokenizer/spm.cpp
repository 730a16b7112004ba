#include "tokenizer/spm.h"

#include <optional>

#include "core/error.h"
#include "tokenizer/merge.h"
#include "tokenizer/unicode.h"

namespace tessera {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

}  // namespace

SpmTokenizer::SpmTokenizer(const VocabData& v) {
  Defaults d;
  d.bos = 1;
  d.eos = 2;
  d.unk = 0;
  d.add_bos = true;
  d.add_eos = false;
  d.add_space_prefix = true;
  load_vocab(v, d);

  // Byte fallback: "<0xXX>" tokens, else a token whose text is the single byte.
  for (int b = 0; b < 256; ++b) {
    static const char* kHex = "0123456789ABCDEF";
    const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
    int32_t id = find_token(name);
    if (id < 0) id = find_token(std::string(1, static_cast<char>(b)));
    byte_ids_[b] = id;
  }
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_special,
                                          bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && add_bos_) out.push_back(bos_);
  bool prev_special = true;  // the input start counts as "after a special token"
  std::string escaped;
  for (const Fragment& f : partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    escaped.clear();
    if (add_space_prefix_ && prev_special) escaped += kSpace;
    for (char c : f.text) {
      if (c == ' ') {
        escaped += kSpace;
      } else {
        escaped.push_back(c);
      }
    }
    encode_escaped(escaped, out);
    prev_special = false;
  }
  if (add_special && add_eos_) out.push_back(eos_);
  return out;
}

void SpmTokenizer::encode_escaped(std::string_view text, std::vector<int32_t>& out) const {
  // A pair merges when the text it spells is a token; the highest score goes first
  // (priority -score). Every merged symbol is therefore a vocabulary token; only single
  // characters can be missing, and those fall back to their bytes.
  tokenizer_detail::merge_pairs<float>(
      text,
      [&](std::string_view left, std::string_view right) -> std::optional<float> {
        const std::string_view joined(left.data(), left.size() + right.size());
        const int32_t id = find_token(joined);
        return id >= 0 ? std::optional<float>(-scores_[id]) : std::nullopt;
      },
      [&](std::string_view piece) {
        if (const int32_t id = find_token(piece); id >= 0) {
          out.push_back(id);
          return;
        }
        for (char c : piece) {
          const int32_t bid = byte_ids_[static_cast<uint8_t>(c)];
          if (bid >= 0) {
            out.push_back(bid);
          } else if (unk_ >= 0) {
            out.push_back(unk_);
          }
        }
      });
}

std::string SpmTokenizer::token_to_piece(int32_t id, bool special) const {
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
      std::string out;
      out.reserve(t.size());
      for (size_t i = 0; i < t.size();) {
        if (t.compare(i, kSpace.size(), kSpace) == 0) {
          out.push_back(' ');
          i += kSpace.size();
        } else {
          out.push_back(t[i++]);
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
