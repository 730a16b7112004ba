// Regular expressions (the common subset of Python re / ECMAScript / PCRE that structured
// output users write) -> a GBNF expression.
//
// Supported: literals and escapes (\n \t \r \f \v \0 \xHH \uHHHH \\ \. and other escaped
// punctuation), classes [...] with ranges, negation and \d \w \s \D \W \S inside, the
// shorthands themselves, `.` (any character but newline), groups (...) (?:...) and named
// groups (?P<n>...) (?<n>...), alternation, quantifiers * + ? {m} {m,} {m,n} (lazy `?` and
// possessive `+` suffixes accepted: they do not change the language), ^ at the start and $
// at the end (the match is always of the whole text). Anything else (backreferences,
// lookaround, \b, inline flags, anchors elsewhere) is a GrammarError naming its offset.
#pragma once
#include <string>
#include <string_view>

namespace tessera::structured {

// `json_string`: the expression matches the *JSON-encoded* body of a string whose value
// matches the regex (no quotes): `"` and `\` come out escaped, `.` and classes never
// produce a quote, backslash or control character, \s also matches the \t \n \r escapes.
std::string regex_to_gbnf_expr(std::string_view pattern, bool json_string = false);

// A whole grammar: root ::= <the regex>.
std::string regex_to_gbnf(std::string_view pattern);

}  // namespace tessera::structured
