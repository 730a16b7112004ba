// Incremental detokenizer for streamed generation: token ids go in one at a time, text
// comes out as soon as it is final.
//
// Text is final when (a) it does not end inside an incomplete UTF-8 sequence (byte-fallback
// and byte-level tokens split characters across tokens) and (b) no stop string could still
// begin inside it. Bytes that might be the start of a stop string are held back until the
// next tokens rule the match out. When a stop string appears, the text before it is
// emitted, the stop string and everything after it are dropped, and stopped() turns true;
// the caller then ends the request (finish_reason "stop").
//
//   pending_: [ final bytes, returned by feed() | held bytes ]
//   held: the longest suffix that is a proper prefix of some stop string, extended back to
//         the lead byte of a trailing incomplete UTF-8 sequence.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tessera {

class Detokenizer {
 public:
  // `stop`: strings that end generation (empty strings are ignored). `special`: render
  // control tokens' text (normally hidden).
  Detokenizer(const Tokenizer& tok, std::vector<std::string> stop, bool special = false);

  // Appends the piece of `token`; returns the text that became final. After a stop string
  // matched, further tokens are ignored and "" is returned.
  std::string feed(int32_t token);
  // End of generation: returns what was held back (a partial stop-string prefix, a
  // dangling incomplete UTF-8 sequence as its raw bytes). Nothing after a stop match.
  std::string flush();

  bool stopped() const { return stop_index_ >= 0; }
  // The stop string that matched ("" when none did).
  const std::string& matched_stop() const;
  // Tokens fed before and including the one that completed the stop string (all fed
  // tokens when none did).
  int n_tokens() const { return n_tokens_; }

 private:
  // Bytes at the end of pending_ that could be the beginning of some stop string.
  size_t held_stop_prefix() const;

  const Tokenizer& tok_;
  std::vector<std::string> stop_;
  bool special_;
  std::string pending_;  // fed text not yet returned
  int stop_index_ = -1;
  int n_tokens_ = 0;
};

}  // namespace tessera
