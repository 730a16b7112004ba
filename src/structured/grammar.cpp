#include "structured/grammar.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <unordered_map>

namespace tessera::structured {

// ---------------------------------------------------------------------------------------
// GrammarBuilder

uint32_t GrammarBuilder::rule_id(const std::string& name) {
  if (auto it = ids_.find(name); it != ids_.end()) return it->second;
  ids_.emplace(name, static_cast<uint32_t>(g_.rules.size()));
  g_.rules.push_back({name, {}, false});
  defined_.push_back(0);
  bodies_.emplace_back();
  return static_cast<uint32_t>(g_.rules.size() - 1);
}

uint32_t GrammarBuilder::new_generated_rule(const std::string& base) {
  g_.rules.push_back({base + "-" + std::to_string(g_.rules.size()), {}, true});
  defined_.push_back(0);
  bodies_.emplace_back();
  return static_cast<uint32_t>(g_.rules.size() - 1);
}

bool GrammarBuilder::defined(uint32_t rule) const {
  return defined_[rule] != 0;
}

void GrammarBuilder::define(uint32_t rule, const std::vector<std::vector<Element>>& alts) {
  defined_[rule] = 1;
  bodies_[rule] = alts;
}

uint32_t GrammarBuilder::byte_set(const ByteSet& s) {
  for (uint32_t i = 0; i < g_.byte_sets.size(); ++i)
    if (g_.byte_sets[i] == s) return i;
  g_.byte_sets.push_back(s);
  return static_cast<uint32_t>(g_.byte_sets.size() - 1);
}

Grammar GrammarBuilder::finish(const std::string& root_name) {
  const size_t n_rules = g_.rules.size();
  uint32_t root = UINT32_MAX;
  for (uint32_t i = 0; i < n_rules; ++i)
    if (g_.rules[i].name == root_name && !g_.rules[i].generated) root = i;
  if (root == UINT32_MAX || !defined_[root])
    throw GrammarError("the grammar has no rule '" + root_name + "'");
  for (uint32_t i = 0; i < n_rules; ++i)
    if (!defined_[i]) throw GrammarError("rule '" + g_.rules[i].name + "' is used but not defined");

  // Productive rules: those that derive some finite byte string. Alternatives that use an
  // unproductive rule (or an empty byte set) can never complete and are dropped, so every
  // state the matcher reaches can still finish.
  std::vector<uint8_t> productive(n_rules, 0);
  auto alt_productive = [&](const std::vector<Element>& alt) {
    for (const Element& e : alt) {
      if (e.kind == Element::RULE && !productive[e.index]) return false;
      if (e.kind == Element::BYTES && g_.byte_sets[e.index].empty()) return false;
    }
    return true;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (uint32_t r = 0; r < n_rules; ++r) {
      if (productive[r]) continue;
      for (const auto& alt : bodies_[r])
        if (alt_productive(alt)) {
          productive[r] = 1;
          changed = true;
          break;
        }
    }
  }
  if (!productive[root])
    throw GrammarError("rule '" + root_name + "' derives no finite text (every alternative " +
                       "recurses forever or uses an empty character class)");
  for (uint32_t r = 0; r < n_rules; ++r) {
    auto& alts = bodies_[r];
    alts.erase(std::remove_if(alts.begin(), alts.end(),
                              [&](const std::vector<Element>& a) { return !alt_productive(a); }),
               alts.end());
  }

  // Nullable rules, then left recursion: an edge r -> s when s can be the first thing r
  // matches (everything before it nullable). A cycle would make stack expansion loop.
  std::vector<uint8_t> nullable(n_rules, 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (uint32_t r = 0; r < n_rules; ++r) {
      if (nullable[r]) continue;
      for (const auto& alt : bodies_[r]) {
        bool all = true;
        for (const Element& e : alt)
          if (e.kind == Element::BYTES || !nullable[e.index]) {
            all = false;
            break;
          }
        if (all) {
          nullable[r] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  // Left edges r -> s (s can be the first thing r matches), marked `tail` when s ends
  // r's alternative: a tail reference pushes no frame, so a cycle of tail edges only
  // (from x* with a nullable x) just revisits a stack, but a cycle with a frame-pushing
  // edge (true left recursion) would grow the stack forever. Such cycles are the edges
  // inside one strongly connected component (Kosaraju, iterative).
  struct Edge {
    uint32_t to;
    bool tail;
  };
  std::vector<std::vector<Edge>> left(n_rules);
  std::vector<std::vector<uint32_t>> rev(n_rules);
  for (uint32_t r = 0; r < n_rules; ++r)
    for (const auto& alt : bodies_[r])
      for (size_t i = 0; i < alt.size(); ++i) {
        const Element& e = alt[i];
        if (e.kind == Element::BYTES) break;
        left[r].push_back({e.index, i + 1 == alt.size()});
        rev[e.index].push_back(r);
        if (!nullable[e.index]) break;
      }
  std::vector<uint32_t> order;
  std::vector<uint8_t> seen(n_rules, 0);
  std::vector<std::pair<uint32_t, size_t>> dfs;
  for (uint32_t s = 0; s < n_rules; ++s) {
    if (seen[s]) continue;
    seen[s] = 1;
    dfs.push_back({s, 0});
    while (!dfs.empty()) {
      auto& [r, i] = dfs.back();
      if (i == left[r].size()) {
        order.push_back(r);
        dfs.pop_back();
        continue;
      }
      const uint32_t t = left[r][i++].to;
      if (!seen[t]) {
        seen[t] = 1;
        dfs.push_back({t, 0});
      }
    }
  }
  std::vector<uint32_t> comp(n_rules, UINT32_MAX), todo;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    if (comp[*it] != UINT32_MAX) continue;
    comp[*it] = *it;
    todo.push_back(*it);
    while (!todo.empty()) {
      const uint32_t r = todo.back();
      todo.pop_back();
      for (uint32_t t : rev[r])
        if (comp[t] == UINT32_MAX) {
          comp[t] = *it;
          todo.push_back(t);
        }
    }
  }
  for (uint32_t r = 0; r < n_rules; ++r)
    for (const Edge& e : left[r]) {
      if (e.tail || comp[e.to] != comp[r]) continue;
      // Name the user's rule, not a generated helper, where the cycle has one.
      std::string name = g_.rules[r].name;
      for (uint32_t q = 0; q < n_rules; ++q)
        if (comp[q] == comp[r] && !g_.rules[q].generated) {
          name = g_.rules[q].name;
          break;
        }
      throw GrammarError("rule '" + name + "' is left-recursive");
    }

  // Lay out.
  size_t total = 0;
  for (const auto& b : bodies_)
    for (const auto& a : b) total += a.size() + 1;
  if (total > kMaxGrammarElements)
    throw GrammarError("the grammar is too large (" + std::to_string(total) +
                       " elements after expansion; the limit is " +
                       std::to_string(kMaxGrammarElements) + ")");
  g_.elems.reserve(total);
  g_.rule_of.reserve(total);
  for (uint32_t r = 0; r < n_rules; ++r) {
    g_.rules[r].alts.clear();
    for (const auto& alt : bodies_[r]) {
      g_.rules[r].alts.push_back(static_cast<uint32_t>(g_.elems.size()));
      for (const Element& e : alt) {
        g_.elems.push_back(e);
        g_.rule_of.push_back(r);
      }
      g_.elems.push_back({Element::END, 0});
      g_.rule_of.push_back(r);
    }
  }
  g_.root = root;
  bodies_.clear();
  return std::move(g_);
}

// ---------------------------------------------------------------------------------------
// UTF-8: code point ranges -> alternatives of byte-range sequences

namespace {

using CodeRange = std::pair<uint32_t, uint32_t>;  // inclusive
using ByteRangeSeq = std::vector<std::pair<uint8_t, uint8_t>>;

int utf8_encode(uint32_t cp, uint8_t* out) {
  if (cp < 0x80) {
    out[0] = static_cast<uint8_t>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
    out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
    out[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
  out[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  return 4;
}

// Splits [s, e] until each piece encodes as a product of byte ranges (the algorithm of
// Rust's utf8-ranges / RE2).
void utf8_sequences(uint32_t s, uint32_t e, std::vector<ByteRangeSeq>& out) {
  static const uint32_t kLenMax[] = {0x7F, 0x7FF, 0xFFFF};
  for (uint32_t b : kLenMax)
    if (s <= b && e > b) {
      utf8_sequences(s, b, out);
      utf8_sequences(b + 1, e, out);
      return;
    }
  if (e <= 0x7F) {
    out.push_back({{static_cast<uint8_t>(s), static_cast<uint8_t>(e)}});
    return;
  }
  for (int i = 1; i < 4; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((s & ~m) != (e & ~m)) {
      if ((s & m) != 0) {
        utf8_sequences(s, s | m, out);
        utf8_sequences((s | m) + 1, e, out);
        return;
      }
      if ((e & m) != m) {
        utf8_sequences(s, (e & ~m) - 1, out);
        utf8_sequences(e & ~m, e, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  const int n = utf8_encode(s, a);
  utf8_encode(e, b);
  ByteRangeSeq seq;
  for (int i = 0; i < n; ++i) seq.push_back({a[i], b[i]});
  out.push_back(std::move(seq));
}

// Sorted, merged, without surrogates.
std::vector<CodeRange> normalize_ranges(std::vector<CodeRange> r, bool negate) {
  std::sort(r.begin(), r.end());
  std::vector<CodeRange> m;
  for (const CodeRange& x : r) {
    if (!m.empty() && x.first <= m.back().second + 1)
      m.back().second = std::max(m.back().second, x.second);
    else
      m.push_back(x);
  }
  if (negate) {
    std::vector<CodeRange> inv;
    uint32_t next = 0;
    for (const CodeRange& x : m) {
      if (x.first > next) inv.push_back({next, x.first - 1});
      next = x.second + 1;
    }
    if (next <= 0x10FFFF) inv.push_back({next, 0x10FFFF});
    m.swap(inv);
  }
  std::vector<CodeRange> out;
  for (const CodeRange& x : m) {
    if (x.second < 0xD800 || x.first > 0xDFFF) {
      out.push_back(x);
      continue;
    }
    if (x.first < 0xD800) out.push_back({x.first, 0xD7FF});
    if (x.second > 0xDFFF) out.push_back({0xE000, x.second});
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// GBNF parser

class GbnfParser {
 public:
  GbnfParser(std::string_view text, GrammarBuilder& b) : s_(text), b_(b) {}

  void parse() {
    skip_space(true);
    while (pos_ < s_.size()) {
      const std::string name = parse_name();
      skip_space(false);
      if (s_.substr(pos_, 3) != "::=") fail("expected '::=' after rule name '" + name + "'");
      pos_ += 3;
      skip_space(true);
      const uint32_t id = b_.rule_id(name);
      if (b_.defined(id)) fail("rule '" + name + "' is defined twice");
      b_.define(id, parse_alternates(name, false));
      if (pos_ < s_.size() && s_[pos_] != '\n' && s_[pos_] != '\r')
        fail(std::string("unexpected '") + s_[pos_] + "'");
      skip_space(true);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw GrammarError("grammar error at line " + std::to_string(line) + ", column " +
                       std::to_string(col) + ": " + msg);
  }

  static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  }

  void skip_space(bool newline_ok) {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else if (c == ' ' || c == '\t' || (newline_ok && (c == '\n' || c == '\r'))) {
        ++pos_;
      } else {
        break;
      }
    }
  }

  std::string parse_name() {
    const size_t start = pos_;
    while (pos_ < s_.size() && is_name_char(s_[pos_])) ++pos_;
    if (pos_ == start) fail("expected a rule name");
    return std::string(s_.substr(start, pos_ - start));
  }

  uint32_t hex(int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      if (pos_ >= s_.size()) fail("unfinished escape");
      const int d = hex_digit(s_[pos_++]);
      if (d < 0) fail("bad hex digit in escape");
      v = (v << 4) | static_cast<uint32_t>(d);
    }
    return v;
  }

  // One character of a literal or class: a code point (escapes decoded; raw UTF-8 decoded).
  uint32_t parse_char() {
    if (pos_ >= s_.size()) fail("unexpected end of grammar");
    const unsigned char c = static_cast<unsigned char>(s_[pos_]);
    if (c == '\\') {
      ++pos_;
      if (pos_ >= s_.size()) fail("unfinished escape");
      const char e = s_[pos_++];
      switch (e) {
        case 'n':
          return '\n';
        case 'r':
          return '\r';
        case 't':
          return '\t';
        case '0':
          return 0;
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
        case '^':
        case '\'':
          return static_cast<unsigned char>(e);
        case 'x':
          return hex(2);
        case 'u':
          return check_cp(hex(4));
        case 'U':
          return check_cp(hex(8));
        default:
          --pos_;
          fail(std::string("unknown escape '\\") + e + "'");
      }
    }
    // Raw UTF-8.
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || pos_ + n > s_.size()) fail("invalid UTF-8 in the grammar");
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int i = 1; i < n; ++i) {
      const unsigned char k = static_cast<unsigned char>(s_[pos_ + i]);
      if ((k & 0xC0) != 0x80) fail("invalid UTF-8 in the grammar");
      cp = (cp << 6) | (k & 0x3F);
    }
    pos_ += n;
    return cp;
  }

  uint32_t check_cp(uint32_t cp) {
    if (cp > 0x10FFFF) fail("code point out of range");
    return cp;
  }

  // A set of code points as elements: one BYTES element when every code point is ASCII,
  // else a reference to a generated rule over UTF-8 byte sequences.
  Element class_element(const std::vector<CodeRange>& ranges) {
    std::vector<ByteRangeSeq> seqs;
    for (const CodeRange& r : ranges) utf8_sequences(r.first, r.second, seqs);
    ByteSet single;
    std::vector<std::vector<Element>> alts;
    for (const ByteRangeSeq& q : seqs) {
      if (q.size() == 1) {
        single.add_range(q[0].first, q[0].second);
        continue;
      }
      std::vector<Element> alt;
      for (const auto& [lo, hi] : q) {
        ByteSet bs;
        bs.add_range(lo, hi);
        alt.push_back({Element::BYTES, b_.byte_set(bs)});
      }
      alts.push_back(std::move(alt));
    }
    if (alts.empty()) return {Element::BYTES, b_.byte_set(single)};
    if (!single.empty()) alts.insert(alts.begin(), {{Element::BYTES, b_.byte_set(single)}});
    const uint32_t r = b_.new_generated_rule("char");
    b_.define(r, alts);
    return {Element::RULE, r};
  }

  void parse_literal(std::vector<Element>& seq) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string literal");
      if (s_[pos_] == '"') {
        ++pos_;
        return;
      }
      if (s_[pos_] == '\n') fail("newline in a string literal");
      uint8_t buf[4];
      const int n = utf8_encode(parse_char(), buf);
      for (int i = 0; i < n; ++i) {
        ByteSet bs;
        bs.add(buf[i]);
        seq.push_back({Element::BYTES, b_.byte_set(bs)});
      }
    }
  }

  void parse_class(std::vector<Element>& seq) {
    ++pos_;  // [
    bool negate = false;
    if (pos_ < s_.size() && s_[pos_] == '^') {
      negate = true;
      ++pos_;
    }
    std::vector<CodeRange> ranges;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated character class");
      if (s_[pos_] == ']') {
        ++pos_;
        break;
      }
      const uint32_t lo = parse_char();
      uint32_t hi = lo;
      if (pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
        ++pos_;
        hi = parse_char();
        if (hi < lo) fail("character range is out of order");
      }
      ranges.push_back({lo, hi});
    }
    seq.push_back(class_element(normalize_ranges(ranges, negate)));
  }

  void grow(size_t n) {
    n_elements_ += n;
    if (n_elements_ > kMaxGrammarElements)
      fail("the grammar is too large after expanding repetitions (limit " +
           std::to_string(kMaxGrammarElements) + " elements)");
  }

  // Replaces seq[start..] (one atom) by its repetition {min, max} (max < 0: unbounded).
  void repeat(std::vector<Element>& seq, size_t start, int min, int max, const std::string& base) {
    const std::vector<Element> atom(seq.begin() + start, seq.end());
    seq.resize(start);
    if (atom.empty()) fail("nothing to repeat");
    grow(atom.size() * static_cast<size_t>(min + 1));
    for (int i = 0; i < min; ++i) seq.insert(seq.end(), atom.begin(), atom.end());
    if (max < 0) {
      // R ::= atom R | ε  (right recursion: the matcher's tail calls keep stacks flat)
      const uint32_t r = b_.new_generated_rule(base);
      std::vector<Element> a = atom;
      a.push_back({Element::RULE, r});
      b_.define(r, {a, {}});
      seq.push_back({Element::RULE, r});
      return;
    }
    // Nested optionals: opt_k ::= atom opt_{k-1} | ε, opt_1 ::= atom | ε.
    uint32_t prev = UINT32_MAX;
    grow((atom.size() + 2) * static_cast<size_t>(max - min));
    for (int k = 1; k <= max - min; ++k) {
      const uint32_t r = b_.new_generated_rule(base);
      std::vector<Element> a = atom;
      if (prev != UINT32_MAX) a.push_back({Element::RULE, prev});
      b_.define(r, {a, {}});
      prev = r;
    }
    if (prev != UINT32_MAX) seq.push_back({Element::RULE, prev});
  }

  int parse_int() {
    const size_t start = pos_;
    long v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      v = v * 10 + (s_[pos_++] - '0');
      if (v > kMaxRepetition)
        fail("repetition count above the limit of " + std::to_string(kMaxRepetition));
    }
    if (pos_ == start) fail("expected a number");
    return static_cast<int>(v);
  }

  std::vector<Element> parse_sequence(const std::string& rule, bool nested) {
    std::vector<Element> seq;
    size_t atom_start = SIZE_MAX;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == '"') {
        atom_start = seq.size();
        parse_literal(seq);
      } else if (c == '[') {
        atom_start = seq.size();
        parse_class(seq);
      } else if (c == '.') {
        ++pos_;
        atom_start = seq.size();
        seq.push_back(class_element(normalize_ranges({{0, 0x10FFFF}}, false)));
      } else if (is_name_char(c)) {
        atom_start = seq.size();
        seq.push_back({Element::RULE, b_.rule_id(parse_name())});
      } else if (c == '(') {
        ++pos_;
        if (++depth_ > 256) fail("groups nested too deeply");
        skip_space(true);
        const uint32_t r = b_.new_generated_rule(rule);
        auto alts = parse_alternates(rule, true);
        if (pos_ >= s_.size() || s_[pos_] != ')') fail("expected ')'");
        ++pos_;
        --depth_;
        b_.define(r, alts);
        atom_start = seq.size();
        seq.push_back({Element::RULE, r});
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (atom_start == SIZE_MAX) fail(std::string("'") + c + "' with nothing before it");
        ++pos_;
        int min = 0, max = -1;
        if (c == '+') min = 1;
        if (c == '?') max = 1;
        if (c == '{') {
          skip_space(false);
          min = parse_int();
          skip_space(false);
          max = min;
          if (pos_ < s_.size() && s_[pos_] == ',') {
            ++pos_;
            skip_space(false);
            max = (pos_ < s_.size() && s_[pos_] == '}') ? -1 : parse_int();
            skip_space(false);
          }
          if (pos_ >= s_.size() || s_[pos_] != '}') fail("expected '}'");
          ++pos_;
          if (max >= 0 && max < min) fail("repetition {m,n} with n < m");
        }
        repeat(seq, atom_start, min, max, rule);
        atom_start = SIZE_MAX;  // x** is not repeated twice
      } else if (c == '<') {
        fail("token references (<...>) are not supported");
      } else {
        break;
      }
      skip_space(nested);
    }
    grow(seq.size() + 1);
    return seq;
  }

  std::vector<std::vector<Element>> parse_alternates(const std::string& rule, bool nested) {
    std::vector<std::vector<Element>> alts;
    alts.push_back(parse_sequence(rule, nested));
    while (pos_ < s_.size() && s_[pos_] == '|') {
      ++pos_;
      skip_space(true);
      alts.push_back(parse_sequence(rule, nested));
    }
    return alts;
  }

  std::string_view s_;
  GrammarBuilder& b_;
  size_t pos_ = 0;
  int depth_ = 0;
  size_t n_elements_ = 0;
};

}  // namespace

Grammar parse_gbnf(std::string_view text, const std::string& root) {
  if (text.size() > (8u << 20)) throw GrammarError("the grammar text is larger than 8 MiB");
  GrammarBuilder b;
  GbnfParser(text, b).parse();
  return b.finish(root);
}

std::vector<uint32_t> min_completion_bytes(const Grammar& g) {
  // Lengths saturate here: beyond it a completion is as good as none for any budget.
  static constexpr uint64_t kCap = kNoCompletion;
  const auto add = [](uint64_t a, uint64_t b) { return std::min(a + b, kCap); };
  // One record per alternative: its byte count and the rule references not yet resolved.
  struct Alt {
    uint32_t rule;
    uint64_t sum = 0;
    uint32_t pending = 0;
  };
  std::vector<Alt> alts;
  std::vector<std::vector<uint32_t>> uses(g.rules.size());  // rule -> alternatives, per use
  for (uint32_t r = 0; r < g.rules.size(); ++r)
    for (uint32_t start : g.rules[r].alts) {
      const auto a = static_cast<uint32_t>(alts.size());
      alts.push_back({r});
      for (uint32_t p = start; g.elems[p].kind != Element::END; ++p) {
        if (g.elems[p].kind == Element::BYTES) {
          alts[a].sum = add(alts[a].sum, 1);
        } else {
          ++alts[a].pending;
          uses[g.elems[p].index].push_back(a);
        }
      }
    }
  // A rule's shortest length is final when it leaves the queue with the smallest value: an
  // alternative's length is at least each of its parts, so nothing found later is shorter.
  using Item = std::pair<uint64_t, uint32_t>;  // (length, rule)
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue;
  for (const Alt& a : alts)
    if (a.pending == 0) queue.push({a.sum, a.rule});
  std::vector<uint64_t> rule_min(g.rules.size(), kCap);
  std::vector<uint8_t> done(g.rules.size(), 0);
  while (!queue.empty()) {
    const auto [len, r] = queue.top();
    queue.pop();
    if (done[r]) continue;
    done[r] = 1;
    rule_min[r] = len;
    for (uint32_t a : uses[r]) {
      alts[a].sum = add(alts[a].sum, len);
      if (--alts[a].pending == 0) queue.push({alts[a].sum, alts[a].rule});
    }
  }
  // Suffix sums inside each alternative, from its END backwards.
  std::vector<uint32_t> out(g.size(), 0);
  for (const Rule& rule : g.rules)
    for (uint32_t start : rule.alts) {
      uint32_t end = start;
      while (g.elems[end].kind != Element::END) ++end;
      uint64_t acc = 0;
      out[end] = 0;
      for (uint32_t p = end; p-- > start;) {
        const Element& e = g.elems[p];
        acc = add(acc, e.kind == Element::BYTES ? 1 : rule_min[e.index]);
        out[p] = static_cast<uint32_t>(acc);
      }
    }
  return out;
}

std::string gbnf_literal(std::string_view bytes) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out = "\"";
  for (const char ch : bytes) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

}  // namespace tessera::structured
