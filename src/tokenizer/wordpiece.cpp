// WordPiece: see wordpiece.h. Character classes follow the Rust `tokenizers` crate that
// Hugging Face's BERT tokenizers run on (char::is_whitespace, the P* and C* general
// categories); utf8proc supplies categories, NFD and lowercase mappings.
#include "tokenizer/wordpiece.h"

#include <utf8proc.h>

#include <cstdlib>

#include "core/error.h"
#include "loader/gguf.h"
#include "loader/memory_source.h"
#include "tokenizer/unicode.h"

namespace tessera {

namespace {

constexpr std::string_view kPhantom = "\xE2\x96\x81";  // U+2581, a word-initial piece

// Rust's char::is_whitespace (the White_Space property).
bool is_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Control, format, private-use and surrogate code points (tab, LF and CR are whitespace
// instead). Unassigned code points stay, as in the tokenizers crate.
bool is_control(uint32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    default:
      return false;
  }
}

// Every ASCII punctuation or symbol character, and the Unicode punctuation categories.
bool is_punctuation(uint32_t c) {
  if (c < 0x80)
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// The CJK ideograph blocks BERT pads with spaces. The range starting at U+2B920 (not
// U+2B820) is the one the Rust tokenizers crate uses.
bool is_chinese_char(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::vector<uint32_t> codepoints(std::string_view s) {
  std::vector<uint32_t> cps;
  cps.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) cps.push_back(unicode::next_codepoint(s, &pos));
  return cps;
}

std::string to_utf8(const std::vector<uint32_t>& cps, size_t b = 0, size_t e = std::string::npos) {
  std::string s;
  e = std::min(e, cps.size());
  for (size_t i = b; i < e; ++i) unicode::append_utf8(s, cps[i]);
  return s;
}

// Canonical decomposition (NFD, with canonical ordering of combining marks).
std::vector<uint32_t> nfd(const std::vector<uint32_t>& cps) {
  const std::string s = to_utf8(cps);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
      &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
  if (n < 0) return cps;  // cannot happen on valid code points; keep the text as it is
  std::vector<uint32_t> r = codepoints(std::string_view(reinterpret_cast<char*>(out), n));
  std::free(out);
  return r;
}

// Rust's char::to_lowercase: the simple mapping, except U+0130 (the only unconditional
// one-to-many lowercase mapping), which becomes "i" + U+0307.
void append_lower(std::vector<uint32_t>& out, uint32_t c) {
  if (c == 0x130) {
    out.push_back('i');
    out.push_back(0x307);
    return;
  }
  out.push_back(static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
}

}  // namespace

WpmTokenizer::WpmTokenizer(const VocabData& v) {
  Defaults d;
  const int64_t n = static_cast<int64_t>(v.tokens.size());
  auto check = [n](const std::optional<int64_t>& id, const char* key) {
    if (id && (*id < 0 || *id >= n))
      throw Error(std::string("tokenizer: ") + key + " = " + std::to_string(*id) +
                  " is outside the vocabulary (" + std::to_string(n) + " tokens)");
  };
  check(v.cls_id, "tokenizer.ggml.cls_token_id");
  check(v.mask_id, "tokenizer.ggml.mask_token_id");
  // [CLS] opens and [SEP] closes every encoded text, as BERT's post-processor adds them.
  if (v.cls_id) d.bos = static_cast<int32_t>(*v.cls_id);
  d.add_bos = true;
  load_vocab(v, d);
  if (unk_ < 0) unk_ = find_token("[UNK]");
  if (unk_ < 0) throw Error("tokenizer: a WordPiece vocabulary needs an unknown token ([UNK])");
  if (sep_ < 0) sep_ = find_token("[SEP]");
  if (bos_ < 0) bos_ = find_token("[CLS]");
  if (add_bos_ && (bos_ < 0 || sep_ < 0))
    throw Error("tokenizer: a WordPiece vocabulary needs [CLS] and [SEP] tokens");
  opts_ = v.wordpiece.value_or(WordPieceOptions{});
  if (opts_.max_chars_per_word < 1)
    throw Error("tokenizer: tokenizer.wordpiece.max_chars_per_word must be >= 1");
  for (const std::string& t : tokens_) max_token_bytes_ = std::max(max_token_bytes_, t.size());
}

std::vector<std::string> WpmTokenizer::pre_tokenize(std::string_view text) const {
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  for (uint32_t c : codepoints(text)) {
    if (opts_.clean_text) {
      if (c == 0 || c == 0xFFFD || is_control(c)) continue;
      if (is_whitespace(c)) c = ' ';
    }
    if (opts_.chinese_chars && is_chinese_char(c)) {
      cps.push_back(' ');
      cps.push_back(c);
      cps.push_back(' ');
    } else {
      cps.push_back(c);
    }
  }
  if (opts_.strip_accents) {
    std::vector<uint32_t> kept;
    for (uint32_t c : nfd(cps))
      if (utf8proc_category(static_cast<utf8proc_int32_t>(c)) != UTF8PROC_CATEGORY_MN)
        kept.push_back(c);
    cps.swap(kept);
  }
  if (opts_.lowercase) {
    std::vector<uint32_t> lower;
    lower.reserve(cps.size());
    for (uint32_t c : cps) append_lower(lower, c);
    cps.swap(lower);
  }

  std::vector<std::string> words;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) words.push_back(std::move(cur));
    cur.clear();
  };
  for (uint32_t c : cps) {
    if (is_whitespace(c)) {
      flush();
    } else if (is_punctuation(c)) {
      flush();
      unicode::append_utf8(cur, c);
      flush();
    } else {
      unicode::append_utf8(cur, c);
    }
  }
  flush();
  return words;
}

void WpmTokenizer::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  // Byte offset of each character, and the end.
  std::vector<size_t> bound;
  for (size_t pos = 0; pos < word.size();) {
    bound.push_back(pos);
    unicode::next_codepoint(word, &pos);
  }
  const size_t n_chars = bound.size();
  bound.push_back(word.size());
  if (static_cast<int64_t>(n_chars) > opts_.max_chars_per_word) {
    out.push_back(unk_);
    return;
  }
  const size_t first = out.size();
  std::string key;
  for (size_t start = 0; start < n_chars;) {
    int32_t id = -1;
    size_t end = n_chars;
    for (; end > start; --end) {
      const size_t bytes = bound[end] - bound[start];
      const size_t prefix = start == 0 ? kPhantom.size() : 0;
      if (bytes + prefix > max_token_bytes_) continue;
      key.assign(start == 0 ? kPhantom : std::string_view());
      key.append(word, bound[start], bytes);
      id = find_token(key);
      // Control tokens ([CLS]) are matched by partition() only, never inside a word.
      if (id >= 0 && token_type(id) == TokenType::CONTROL) id = -1;
      if (id >= 0) break;
    }
    if (id < 0) {  // no piece matches here: the whole word is unknown
      out.resize(first);
      out.push_back(unk_);
      return;
    }
    out.push_back(id);
    start = end;
  }
}

std::vector<int32_t> WpmTokenizer::encode(std::string_view text, bool add_special,
                                          bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && add_bos_) out.push_back(bos_);
  for (const Fragment& f : partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      continue;
    }
    for (const std::string& w : pre_tokenize(f.text)) encode_word(w, out);
  }
  if (add_special && add_bos_) out.push_back(sep_);
  return out;
}

std::string WpmTokenizer::token_to_piece(int32_t id, bool special) const {
  if (id < 0 || id >= n_vocab()) return "";
  if (is_hidden_special(id) && !special) return "";
  const std::string& t = tokens_[id];
  if (!t.starts_with(kPhantom)) return t;
  std::string piece(1, ' ');
  piece.append(t, kPhantom.size());
  return piece;
}

WordPieceOptions read_wordpiece_options(const gguf::Source& f) {
  WordPieceOptions o;
  o.clean_text = f.get_bool("tokenizer.wordpiece.clean_text").value_or(o.clean_text);
  o.chinese_chars = f.get_bool("tokenizer.wordpiece.chinese_chars").value_or(o.chinese_chars);
  o.strip_accents = f.get_bool("tokenizer.wordpiece.strip_accents").value_or(o.strip_accents);
  o.lowercase = f.get_bool("tokenizer.wordpiece.lowercase").value_or(o.lowercase);
  o.max_chars_per_word =
      f.get_int("tokenizer.wordpiece.max_chars_per_word").value_or(o.max_chars_per_word);
  return o;
}

void write_wordpiece_options(const WordPieceOptions& o, gguf::MemorySource& out) {
  out.set_bool("tokenizer.wordpiece.clean_text", o.clean_text);
  out.set_bool("tokenizer.wordpiece.chinese_chars", o.chinese_chars);
  out.set_bool("tokenizer.wordpiece.strip_accents", o.strip_accents);
  out.set_bool("tokenizer.wordpiece.lowercase", o.lowercase);
  out.set_uint("tokenizer.wordpiece.max_chars_per_word",
               static_cast<uint64_t>(o.max_chars_per_word));
}

}  // namespace tessera
