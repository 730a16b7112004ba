#include "tokenizer/spm.h"

#include <queue>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace tessera {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// A symbol is a byte range of the escaped text; merged symbols grow rightwards and the
// absorbed one is left with n == 0. prev/next link the live symbols (-1 at the ends).
struct Symbol {
  int prev;
  int next;
  size_t start;
  size_t n;
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;  // bytes of left + right when queued; stale entries no longer match
};

// Max-heap order: higher score first, then the leftmost pair.
struct BigramLess {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

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
  if (text.empty()) return;
  std::vector<Symbol> sym;
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(unicode::utf8_len(text[off]), text.size() - off);
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, off + len == text.size() ? -1 : idx + 1, off, len});
    off += len;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view joined = text.substr(sym[left].start, sym[left].n + sym[right].n);
    const int32_t id = find_token(joined);
    if (id < 0) return;
    queue.push({left, right, scores_[id], joined.size()});
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  // Every merged symbol is a vocabulary token by construction; only single characters
  // can be missing, and those fall back to their bytes.
  for (int i = 0; i != -1; i = sym[i].next) {
    const std::string_view piece = text.substr(sym[i].start, sym[i].n);
    const int32_t id = find_token(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      const int32_t bid = byte_ids_[static_cast<uint8_t>(c)];
      if (bid >= 0) {
        out.push_back(bid);
      } else if (unk_ >= 0) {
        out.push_back(unk_);
      }
    }
  }
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
