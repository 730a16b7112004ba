// A context-free grammar over bytes, and its GBNF text syntax (llama.cpp's grammar format).
//
// Every terminal is a set of bytes; UTF-8 character classes are compiled into alternatives
// of byte-set sequences, so the matcher never decodes UTF-8. Rules are alternatives of
// sequences, stored flat:
//
//   elems: [ e e e END | e e END | ... ]      one run per alternative, END-terminated
//   rules[r].alts: offsets into elems of the first element of each alternative
//
// A grammar position is an offset into `elems`. An element is a byte set (BYTES, index
// into byte_sets), a reference to a rule (RULE) or the end of an alternative (END).
//
// Invariants after GrammarBuilder::finish (checked; violations are GrammarError):
// every referenced rule is defined, the root exists, and no rule is left-recursive (a rule
// cannot reach itself through nullable prefixes), so expanding a stack always terminates.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace tessera::structured {

// Bad grammar text (or a front end's input that turned into one): the message names the
// place ("line 3, column 7" for GBNF, "at offset 12" for a regex).
class GrammarError : public Error {
 public:
  explicit GrammarError(const std::string& msg) : Error(msg) {}
};

// 256 bits: byte b is in the set when bit b is set.
struct ByteSet {
  std::array<uint64_t, 4> w{};
  bool has(uint8_t b) const { return (w[b >> 6] >> (b & 63)) & 1; }
  void add(uint8_t b) { w[b >> 6] |= uint64_t{1} << (b & 63); }
  void add_range(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) add(static_cast<uint8_t>(b));
  }
  bool empty() const { return !(w[0] | w[1] | w[2] | w[3]); }
  bool operator==(const ByteSet&) const = default;
};

struct Element {
  enum Kind : uint8_t { END, BYTES, RULE };
  Kind kind = END;
  uint32_t index = 0;  // BYTES: byte_sets index; RULE: rule id
};

struct Rule {
  std::string name;
  std::vector<uint32_t> alts;  // first element of each alternative
  // Made by the parser (groups, repetitions, character classes), not named by the user.
  // The mask cache keys stack frames of generated rules together with the named rule
  // frame below them (token_mask.h).
  bool generated = false;
};

struct Grammar {
  std::vector<Element> elems;
  std::vector<ByteSet> byte_sets;
  std::vector<Rule> rules;
  std::vector<uint32_t> rule_of;  // [elems.size()] the rule each position belongs to
  uint32_t root = 0;

  size_t size() const { return elems.size(); }
};

// Limits that bound what hostile input can make us build.
constexpr size_t kMaxGrammarElements = 1u << 21;  // elements after expansion
constexpr int kMaxRepetition = 10000;             // x{m,n}: n (and m) at most this

// Builds a Grammar rule by rule; front ends (GBNF text, and the JSON Schema / regex
// converters that emit GBNF) use it through parse_gbnf.
class GrammarBuilder {
 public:
  // The id of `name`, created (undefined) on first use.
  uint32_t rule_id(const std::string& name);
  uint32_t new_generated_rule(const std::string& base);
  bool defined(uint32_t rule) const;
  // Defines `rule` with alternatives, each a sequence of elements (without END).
  void define(uint32_t rule, const std::vector<std::vector<Element>>& alts);
  uint32_t byte_set(const ByteSet& s);
  // Checks the invariants above and returns the grammar; `root_name` must be defined.
  Grammar finish(const std::string& root_name);

 private:
  Grammar g_;
  std::vector<uint8_t> defined_;
  std::vector<std::vector<std::vector<Element>>> bodies_;
  std::unordered_map<std::string, uint32_t> ids_;  // named rules
};

// Parses GBNF (llama.cpp grammars: `name ::= alternatives`, "literals" with escapes
// \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH, [classes] with ranges and ^, `.`, ( groups ),
// `|`, postfix * + ? {m} {m,} {m,n}, # comments; a rule ends at a newline outside
// parentheses). The start rule is `root`. Throws GrammarError with line and column.
Grammar parse_gbnf(std::string_view text, const std::string& root = "root");

// The fewest bytes that finish the sequence from each grammar position to the end of its
// alternative (END: 0; a BYTES element: 1 + the rest; a RULE: that rule's shortest
// sentence + the rest). [g.size()]; kNoCompletion where no finite sentence exists (a rule
// that only recurses). Computed with Knuth's generalization of Dijkstra's algorithm to
// grammars: O(elements * log rules), however the rules are ordered.
constexpr uint32_t kNoCompletion = UINT32_MAX;
std::vector<uint32_t> min_completion_bytes(const Grammar& g);

// A GBNF literal "..." for `bytes` (escaping quotes, backslashes and control bytes; other
// bytes pass through, so UTF-8 text stays readable).
std::string gbnf_literal(std::string_view bytes);

// The value of one hexadecimal digit, or -1 (the escapes of GBNF and of regexes).
inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace tessera::structured
