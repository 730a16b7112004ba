#include "structured/regex.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "structured/grammar.h"

namespace tessera::structured {

namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

constexpr size_t kMaxPattern = 16384;
constexpr int kMaxDepth = 128;

Ranges normalized(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges m;
  for (const auto& x : r) {
    if (!m.empty() && x.first <= m.back().second + 1)
      m.back().second = std::max(m.back().second, x.second);
    else
      m.push_back(x);
  }
  return m;
}

Ranges complement(const Ranges& in) {
  Ranges m = normalized(in), out;
  uint32_t next = 0;
  for (const auto& x : m) {
    if (x.first > next) out.push_back({next, x.first - 1});
    next = x.second + 1;
  }
  if (next <= 0x10FFFF) out.push_back({next, 0x10FFFF});
  return out;
}

Ranges minus(const Ranges& a, const Ranges& b) {
  Ranges cb = complement(b), out;
  for (const auto& x : normalized(a))
    for (const auto& y : cb) {
      const uint32_t lo = std::max(x.first, y.first), hi = std::min(x.second, y.second);
      if (lo <= hi) out.push_back({lo, hi});
    }
  return out;
}

std::string class_char(uint32_t c) {
  static const char* kHex = "0123456789ABCDEF";
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
    return std::string(1, static_cast<char>(c));
  std::string out = c <= 0xFFFF ? "\\u" : "\\U";
  const int n = c <= 0xFFFF ? 4 : 8;
  for (int i = n - 1; i >= 0; --i) out += kHex[(c >> (4 * i)) & 15];
  return out;
}

// A GBNF character class for `r` (an empty set becomes a class nothing matches).
std::string gbnf_class(const Ranges& r) {
  const Ranges m = normalized(r);
  if (m.empty()) return "[^\\u0000-\\U0010FFFF]";
  std::string out = "[";
  for (const auto& [lo, hi] : m) {
    out += class_char(lo);
    if (hi > lo) out += '-' + class_char(hi);
  }
  return out + "]";
}

void utf8_append(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

const Ranges kDigit = {{'0', '9'}};
const Ranges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
const Ranges kSpace = {{'\t', '\r'}, {' ', ' '}};
// Characters a JSON string holds unescaped.
const Ranges kJsonPlain = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}};

class RegexConverter {
 public:
  RegexConverter(std::string_view p, bool json) : p_(p), json_(json) {}

  std::string convert() {
    if (p_.size() > kMaxPattern)
      throw GrammarError("the regex is longer than " + std::to_string(kMaxPattern) + " bytes");
    if (!p_.empty() && p_[0] == '^') ++pos_;
    std::string e = alternation();
    if (pos_ < p_.size()) fail(p_[pos_] == ')' ? "unbalanced ')'" : "unexpected character");
    return e;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw GrammarError("regex error at offset " + std::to_string(pos_) + ": " + msg);
  }

  bool at_end_anchor() const { return p_[pos_] == '$' && pos_ + 1 == p_.size(); }

  std::string alternation() {
    if (++depth_ > kMaxDepth) fail("groups nested too deeply");
    std::vector<std::string> alts{sequence()};
    while (pos_ < p_.size() && p_[pos_] == '|') {
      ++pos_;
      alts.push_back(sequence());
    }
    --depth_;
    if (alts.size() == 1) return alts[0];
    std::string out = "(";
    for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
    return out + ")";
  }

  std::string sequence() {
    std::string out;
    while (pos_ < p_.size() && p_[pos_] != '|' && p_[pos_] != ')') {
      if (at_end_anchor()) {
        ++pos_;
        break;
      }
      std::string a = atom();
      a = quantified(a);
      out += (out.empty() ? "" : " ") + a;
    }
    return out.empty() ? "\"\"" : "(" + out + ")";
  }

  int number() {
    const size_t start = pos_;
    long v = 0;
    while (pos_ < p_.size() && p_[pos_] >= '0' && p_[pos_] <= '9') {
      v = v * 10 + (p_[pos_++] - '0');
      if (v > kMaxRepetition)
        fail("repetition count above the limit of " + std::to_string(kMaxRepetition));
    }
    if (pos_ == start) fail("expected a number");
    return static_cast<int>(v);
  }

  std::string quantified(const std::string& atom) {
    if (pos_ >= p_.size()) return atom;
    const char c = p_[pos_];
    std::string q;
    if (c == '*' || c == '+' || c == '?') {
      q = std::string(1, c);
      ++pos_;
    } else if (c == '{' && pos_ + 1 < p_.size() && p_[pos_ + 1] >= '0' && p_[pos_ + 1] <= '9') {
      ++pos_;
      const int m = number();
      int n = m;
      bool open = false;
      if (pos_ < p_.size() && p_[pos_] == ',') {
        ++pos_;
        if (pos_ < p_.size() && p_[pos_] == '}')
          open = true;
        else
          n = number();
      }
      if (pos_ >= p_.size() || p_[pos_] != '}') fail("expected '}'");
      ++pos_;
      if (!open && n < m) fail("repetition {m,n} with n < m");
      q = '{' + std::to_string(m);
      if (open) q += ',';
      if (!open && n != m) q += ',' + std::to_string(n);
      q += '}';
    } else {
      return atom;
    }
    if (pos_ < p_.size() && (p_[pos_] == '?' || p_[pos_] == '+')) ++pos_;  // lazy/possessive
    if (pos_ < p_.size() &&
        (p_[pos_] == '*' || p_[pos_] == '+' || p_[pos_] == '?' ||
         (p_[pos_] == '{' && pos_ + 1 < p_.size() && p_[pos_ + 1] >= '0' && p_[pos_ + 1] <= '9')))
      fail("nothing to repeat");
    return "(" + atom + ")" + q;
  }

  uint32_t hex(int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      if (pos_ >= p_.size()) fail("unfinished escape");
      const int d = hex_digit(p_[pos_++]);
      if (d < 0) fail("bad hex digit");
      v = (v << 4) | static_cast<uint32_t>(d);
    }
    return v;
  }

  uint32_t utf8_char() {
    const unsigned char c = static_cast<unsigned char>(p_[pos_]);
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || pos_ + n > p_.size()) fail("invalid UTF-8");
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<unsigned char>(p_[pos_ + i]) & 0x3F);
    pos_ += n;
    return cp;
  }

  // After a backslash: a class shorthand (ranges) or a single character.
  struct Escape {
    bool is_class = false;
    Ranges ranges;
    uint32_t ch = 0;
  };
  Escape escape(bool in_class) {
    if (pos_ >= p_.size()) fail("pattern ends with a backslash");
    const char c = p_[pos_++];
    Escape e;
    auto cls = [&](const Ranges& r, bool neg) {
      e.is_class = true;
      e.ranges = neg ? complement(r) : r;
      return e;
    };
    switch (c) {
      case 'd':
        return cls(kDigit, false);
      case 'D':
        return cls(kDigit, true);
      case 'w':
        return cls(kWord, false);
      case 'W':
        return cls(kWord, true);
      case 's':
        return cls(kSpace, false);
      case 'S':
        return cls(kSpace, true);
      case 'n':
        e.ch = '\n';
        return e;
      case 't':
        e.ch = '\t';
        return e;
      case 'r':
        e.ch = '\r';
        return e;
      case 'f':
        e.ch = '\f';
        return e;
      case 'v':
        e.ch = '\v';
        return e;
      case '0':
        e.ch = 0;
        return e;
      case 'x':
        e.ch = hex(2);
        return e;
      case 'u':
        e.ch = hex(4);
        return e;
      default:
        break;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9')) {
      --pos_;
      fail(std::string("unsupported escape '\\") + c + "'" +
           (c == 'b' || c == 'B' ? " (word boundaries are not supported)" : "") +
           (c >= '1' && c <= '9' ? " (backreferences are not supported)" : ""));
    }
    (void)in_class;
    e.ch = static_cast<unsigned char>(c);
    return e;
  }

  // A set of characters as GBNF; in JSON mode restricted to what a JSON string holds
  // unescaped, with \t \n \r also as their escapes when `space_escapes`.
  std::string set_expr(const Ranges& r) {
    if (!json_) return gbnf_class(r);
    std::string cls = gbnf_class(minus(r, complement(kJsonPlain)));
    std::vector<std::string> extra;
    auto in = [&](uint32_t c) {
      for (const auto& x : r)
        if (c >= x.first && c <= x.second) return true;
      return false;
    };
    if (in('"')) extra.push_back("\"\\\\\\\"\"");
    if (in('\\')) extra.push_back("\"\\\\\\\\\"");
    if (in('\n')) extra.push_back("\"\\\\n\"");
    if (in('\t')) extra.push_back("\"\\\\t\"");
    if (in('\r')) extra.push_back("\"\\\\r\"");
    if (extra.empty()) return cls;
    std::string out = "(" + cls;
    for (const auto& x : extra) out += " | " + x;
    return out + ")";
  }

  std::string char_expr(uint32_t c) {
    if (json_) {
      if (c == '"') return "\"\\\\\\\"\"";
      if (c == '\\') return "\"\\\\\\\\\"";
      if (c == '\n') return "\"\\\\n\"";
      if (c == '\t') return "\"\\\\t\"";
      if (c == '\r') return "\"\\\\r\"";
      if (c < 0x20) {
        static const char* kHex = "0123456789abcdef";
        return std::string("\"\\\\u00") + kHex[c >> 4] + kHex[c & 15] + "\"";
      }
    }
    std::string bytes;
    utf8_append(c, bytes);
    return gbnf_literal(bytes);
  }

  std::string atom() {
    const char c = p_[pos_];
    switch (c) {
      case '(': {
        ++pos_;
        if (pos_ < p_.size() && p_[pos_] == '?') {
          ++pos_;
          if (pos_ < p_.size() && p_[pos_] == ':') {
            ++pos_;
          } else if (pos_ + 1 < p_.size() && (p_[pos_] == 'P' || p_[pos_] == '<') &&
                     p_[pos_ + (p_[pos_] == 'P')] == '<' &&
                     p_[pos_ + 1 + (p_[pos_] == 'P')] != '=' &&
                     p_[pos_ + 1 + (p_[pos_] == 'P')] != '!') {
            pos_ += p_[pos_] == 'P' ? 2 : 1;
            while (pos_ < p_.size() && p_[pos_] != '>') ++pos_;
            if (pos_ >= p_.size()) fail("unterminated group name");
            ++pos_;
          } else {
            fail("lookaround, inline flags and other (?...) groups are not supported");
          }
        }
        std::string e = alternation();
        if (pos_ >= p_.size() || p_[pos_] != ')') fail("missing ')'");
        ++pos_;
        return "(" + e + ")";
      }
      case '[':
        return char_class();
      case '.':
        ++pos_;
        return set_expr(complement({{'\n', '\n'}}));
      case '\\': {
        ++pos_;
        Escape e = escape(false);
        return e.is_class ? set_expr(e.ranges) : char_expr(e.ch);
      }
      case '^':
        fail("'^' is only supported at the start of the pattern");
      case '$':
        fail("'$' is only supported at the end of the pattern");
      case '*':
      case '+':
      case '?':
        fail("nothing to repeat");
      case '{':
        if (pos_ + 1 < p_.size() && p_[pos_ + 1] >= '0' && p_[pos_ + 1] <= '9')
          fail("nothing to repeat");
        break;
      default:
        break;
    }
    return char_expr(utf8_char());
  }

  std::string char_class() {
    ++pos_;  // [
    bool neg = false;
    if (pos_ < p_.size() && p_[pos_] == '^') {
      neg = true;
      ++pos_;
    }
    Ranges r;
    bool first = true;
    while (true) {
      if (pos_ >= p_.size()) fail("unterminated character class");
      if (p_[pos_] == ']' && !first) {
        ++pos_;
        break;
      }
      first = false;
      uint32_t lo;
      if (p_[pos_] == '\\') {
        ++pos_;
        Escape e = escape(true);
        if (e.is_class) {
          r.insert(r.end(), e.ranges.begin(), e.ranges.end());
          continue;
        }
        lo = e.ch;
      } else if (p_[pos_] == '[' && pos_ + 1 < p_.size() && p_[pos_ + 1] == ':') {
        fail("POSIX classes ([:alpha:]) are not supported");
      } else {
        lo = utf8_char();
      }
      uint32_t hi = lo;
      if (pos_ + 1 < p_.size() && p_[pos_] == '-' && p_[pos_ + 1] != ']') {
        ++pos_;
        if (p_[pos_] == '\\') {
          ++pos_;
          Escape e = escape(true);
          if (e.is_class) fail("a class shorthand cannot end a range");
          hi = e.ch;
        } else {
          hi = utf8_char();
        }
        if (hi < lo) fail("character range is out of order");
      }
      r.push_back({lo, hi});
    }
    return set_expr(neg ? complement(r) : r);
  }

  std::string_view p_;
  bool json_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::string regex_to_gbnf_expr(std::string_view pattern, bool json_string) {
  return RegexConverter(pattern, json_string).convert();
}

std::string regex_to_gbnf(std::string_view pattern) {
  return "root ::= " + regex_to_gbnf_expr(pattern) + "\n";
}

}  // namespace tessera::structured
