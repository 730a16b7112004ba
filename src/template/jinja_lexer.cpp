#include "template/jinja_lexer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "template/jinja_text.h"
#include "tokenizer/unicode.h"

namespace tessera::jinja {

namespace {

// jinja2 normalizes every newline sequence to "\n" before lexing and, without
// keep_trailing_newline, drops a single trailing newline.
std::string normalize_newlines(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out += src[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize_newlines(source)) {
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') newlines_.push_back(i);
    }
  }

  std::vector<Token> run() {
    size_t pos = 0;
    const size_t n = src_.size();
    while (pos < n) {
      size_t s = find_tag_start(pos);
      std::string text = src_.substr(pos, s - pos);
      if (s < n) {
        char kind = src_[s + 1];
        char sign = s + 2 < n ? src_[s + 2] : '\0';
        if (sign == '-') {
          text = py_strip(text, nullptr, false, true);
        } else if (sign != '+' && kind != '{') {
          // lstrip_blocks: a block or comment tag preceded on its line only by spaces and
          // tabs takes that indentation away with it.
          size_t l_pos = text.rfind('\n');
          l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
          bool line_starting = pos == 0 || src_[pos - 1] == '\n';
          if ((l_pos > 0 || line_starting) &&
              text.find_first_not_of(" \t", l_pos) == std::string::npos) {
            text.resize(l_pos);
          }
        }
      }
      if (!text.empty()) push(Token::Type::kText, std::move(text), pos);
      if (s == n) break;
      pos = lex_tag(s);
    }
    push(Token::Type::kEof, "", n);
    return std::move(tokens_);
  }

 private:
  size_t find_tag_start(size_t pos) const {
    while (true) {
      size_t s = src_.find('{', pos);
      if (s == std::string::npos || s + 1 >= src_.size()) return src_.size();
      char c = src_[s + 1];
      if (c == '{' || c == '%' || c == '#') return s;
      pos = s + 1;
    }
  }

  int line_at(size_t pos) const {
    return 1 + static_cast<int>(std::lower_bound(newlines_.begin(), newlines_.end(), pos) -
                                newlines_.begin());
  }

  [[noreturn]] void fail(const std::string& msg, size_t pos) const {
    throw Error("chat template syntax error (line " + std::to_string(line_at(pos)) + "): " + msg);
  }

  void push(Token::Type type, std::string value, size_t pos) {
    Token t;
    t.type = type;
    t.value = std::move(value);
    t.line = line_at(pos);
    tokens_.push_back(std::move(t));
  }

  // Skips Unicode whitespace (Python's \s) from `pos`.
  size_t skip_whitespace(size_t pos) const {
    while (pos < src_.size()) {
      utf8proc_int32_t cp = 0;
      utf8proc_ssize_t len =
          utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(src_.data() + pos),
                           static_cast<utf8proc_ssize_t>(src_.size() - pos), &cp);
      if (len <= 0 || !py_isspace(static_cast<char32_t>(cp))) break;
      pos += static_cast<size_t>(len);
    }
    return pos;
  }

  bool at(size_t pos, std::string_view s) const { return src_.compare(pos, s.size(), s) == 0; }

  // Lexes the tag starting at `s` ("{{", "{%" or "{#"); returns the position after it,
  // including whatever the tag's end strips (trim_blocks newline, or whitespace after '-').
  size_t lex_tag(size_t s) {
    char kind = src_[s + 1];
    size_t p = s + 2;
    if (p < src_.size() && (src_[p] == '-' || (src_[p] == '+' && kind != '{'))) ++p;

    if (kind == '#') {
      size_t e = src_.find("#}", p);
      if (e == std::string::npos) fail("missing end of comment tag", s);
      char sign = e > p ? src_[e - 1] : '\0';
      return after_end(e + 2, sign, /*is_block=*/true);
    }

    const bool is_block = kind == '%';
    push(is_block ? Token::Type::kBlockBegin : Token::Type::kVarBegin, "", s);
    int depth = 0;  // brackets open inside the tag: "}}" closes a dict there, not the tag
    while (true) {
      while (p < src_.size() && (src_[p] == ' ' || src_[p] == '\t' || src_[p] == '\n')) ++p;
      if (p >= src_.size()) {
        fail(is_block ? "unexpected end of template inside a block tag '{% ... %}'"
                      : "unexpected end of template inside a print tag '{{ ... }}'",
             s);
      }
      if (depth == 0) {
        const char* close = is_block ? "%}" : "}}";
        for (char sign : {'-', '+', '\0'}) {
          if (sign == '+' && !is_block) continue;
          size_t q = p;
          if (sign != '\0') {
            if (src_[q] != sign) continue;
            ++q;
          }
          if (at(q, close)) {
            push(is_block ? Token::Type::kBlockEnd : Token::Type::kVarEnd, "", p);
            return after_end(q + 2, sign, is_block);
          }
        }
      }
      p = lex_expression_token(p, depth);
    }
  }

  size_t after_end(size_t p, char sign, bool is_block) const {
    if (sign == '-') return skip_whitespace(p);
    if (sign != '+' && is_block && p < src_.size() && src_[p] == '\n') return p + 1;  // trim_blocks
    return p;
  }

  size_t lex_expression_token(size_t p, int& depth) {
    const char c = src_[p];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = p;
      while (e < src_.size() &&
             (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) {
        ++e;
      }
      push(Token::Type::kName, src_.substr(p, e - p), p);
      return e;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return lex_number(p);
    if (c == '\'' || c == '"') return lex_string(p);

    static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                       "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                                       "]",  "{",  "}",  ",",  ".",  ":",  "|"};
    for (const char* op : kOps) {
      if (at(p, op)) {
        std::string_view v(op);
        if (v == "(" || v == "[" || v == "{") ++depth;
        if (v == ")" || v == "]" || v == "}") {
          if (depth == 0) fail("unexpected '" + std::string(v) + "'", p);
          --depth;
        }
        push(Token::Type::kOp, std::string(v), p);
        return p + v.size();
      }
    }
    fail(std::string("unexpected char '") + c + "'", p);
  }

  size_t lex_number(size_t p) {
    auto digits = [&](size_t q) {
      while (q < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[q])) ||
                                 (src_[q] == '_' && q + 1 < src_.size() &&
                                  std::isdigit(static_cast<unsigned char>(src_[q + 1]))))) {
        ++q;
      }
      return q;
    };
    size_t e = digits(p);
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      e = digits(e + 1);
      is_float = true;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
        e = digits(q);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = p; i < e; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    Token t;
    t.line = line_at(p);
    if (is_float) {
      t.type = Token::Type::kFloat;
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      t.type = Token::Type::kInt;
      t.int_value = std::strtoll(text.c_str(), nullptr, 10);
    }
    t.value = std::move(text);
    tokens_.push_back(std::move(t));
    return e;
  }

  // String literals decode with Python's unicode-escape rules; unknown escapes stay verbatim.
  size_t lex_string(size_t p) {
    const char quote = src_[p];
    std::string out;
    size_t q = p + 1;
    auto hex = [&](size_t at_pos, int n_digits) -> long {
      if (at_pos + static_cast<size_t>(n_digits) > src_.size()) fail("truncated escape", at_pos);
      std::string h = src_.substr(at_pos, static_cast<size_t>(n_digits));
      char* end = nullptr;
      long v = std::strtol(h.c_str(), &end, 16);
      if (end != h.c_str() + n_digits) fail("malformed escape", at_pos);
      return v;
    };
    while (true) {
      if (q >= src_.size()) fail("unexpected end of string literal", p);
      char c = src_[q];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++q;
        continue;
      }
      if (q + 1 >= src_.size()) fail("unexpected end of string literal", p);
      char e = src_[q + 1];
      q += 2;
      switch (e) {
        case '\n':
          break;  // line continuation
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          unicode::append_utf8(out, static_cast<uint32_t>(hex(q, 2)));
          q += 2;
          break;
        case 'u':
          unicode::append_utf8(out, static_cast<uint32_t>(hex(q, 4)));
          q += 4;
          break;
        case 'U':
          unicode::append_utf8(out, static_cast<uint32_t>(hex(q, 8)));
          q += 8;
          break;
        default:
          if (e >= '0' && e <= '7') {
            int v = e - '0';
            for (int i = 0; i < 2 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; ++i) {
              v = v * 8 + (src_[q++] - '0');
            }
            unicode::append_utf8(out, static_cast<uint32_t>(v));
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    push(Token::Type::kString, std::move(out), p);
    return q + 1;
  }

  std::string src_;
  std::vector<size_t> newlines_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  return Lexer(source).run();
}

std::string describe(const Token& t) {
  switch (t.type) {
    case Token::Type::kText:
      return "template text";
    case Token::Type::kVarBegin:
      return "'begin of print statement'";
    case Token::Type::kVarEnd:
      return "'end of print statement'";
    case Token::Type::kBlockBegin:
      return "'begin of statement block'";
    case Token::Type::kBlockEnd:
      return "'end of statement block'";
    case Token::Type::kEof:
      return "'end of template'";
    case Token::Type::kName:
    case Token::Type::kOp:
    case Token::Type::kInt:
    case Token::Type::kFloat:
      return "'" + t.value + "'";
    case Token::Type::kString:
      return "string literal";
  }
  return "token";
}

}  // namespace tessera::jinja
