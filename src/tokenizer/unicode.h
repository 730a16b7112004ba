// UTF-8 helpers and the GPT-2 byte <-> unicode mapping shared by the tokenizers.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tessera::unicode {

// Length of the UTF-8 sequence that starts with `lead`, judged from its high bits only
// (continuation and invalid lead bytes count as 1). Tokenizers use it to cut text into
// symbols; they clamp it to the bytes that remain.
inline size_t utf8_len(char lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[static_cast<uint8_t>(lead) >> 4];
}

// Appends the UTF-8 encoding of `cp` (must be <= 0x10FFFF).
void append_utf8(std::string& out, uint32_t cp);

// Returns `text` with every ill-formed UTF-8 sequence replaced by U+FFFD, one
// replacement per offending byte. Well-formed text is returned unchanged. The regex
// engine runs in UTF mode and needs valid input.
std::string sanitize_utf8(std::string_view text);

// GPT-2 byte-level encoding: each byte maps to one printable code point so that BPE
// vocabularies never hold raw control bytes or spaces. Printable Latin-1 bytes
// ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) map to themselves; the other 68 bytes map, in
// increasing byte order, to U+0100, U+0101, ...
// Returns the UTF-8 of the code point for byte `b`.
const std::string& byte_to_unicode(uint8_t b);
// Inverse of byte_to_unicode: the byte for code point `cp`, or -1 when `cp` is not
// one of the 256 mapped code points.
int unicode_to_byte(uint32_t cp);

// Decodes one code point at text[*pos] (advancing *pos); ill-formed input yields
// U+FFFD and advances one byte.
uint32_t next_codepoint(std::string_view text, size_t* pos);

// Byte value of a byte-fallback token text "<0xXX>" (hex digits of either case), or -1
// when `t` is not of that form.
int parse_byte_token(std::string_view t);

}  // namespace tessera::unicode
