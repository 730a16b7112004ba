// Tokenizer for Jinja template source, configured as Hugging Face chat templates are rendered:
// trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False, default delimiters.
//
// Whitespace control is resolved here, so the parser sees text tokens exactly as they print:
//   {%- / {{- / {#-   strip all whitespace before the tag
//   -%} / -}} / -#}   strip all whitespace after the tag
//   {%+ / {#+         keep the indentation lstrip_blocks would remove
//   +%} / +#}         keep the newline trim_blocks would remove
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::jinja {

struct Token {
  enum class Type : uint8_t {
    kText,        // literal template text (value = the text)
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,        // identifier or keyword (value)
    kString,      // string literal, escapes resolved (value)
    kInt,         // integer literal (int_value)
    kFloat,       // float literal (float_value)
    kOp,          // operator or punctuation (value), e.g. "==", "(", "|"
    kEof,
  };
  Type type = Type::kEof;
  std::string value;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

// Throws tessera::Error on unterminated tags/strings and unexpected characters.
std::vector<Token> tokenize(std::string_view source);

// Human-readable token description for syntax errors, e.g. "'end of print statement'".
std::string describe(const Token& t);

}  // namespace tessera::jinja
