// Building blocks of the streaming output parsers (reasoning, tool calls).
//
// TextScan holds the text a parser has been fed and not yet let go of, addressed by
// absolute byte positions in the whole stream. A parser walks it left to right; where a
// literal marker might begin but the text ends first (PARTIAL), it waits for more input
// instead of deciding, so its decisions depend only on the bytes, never on how the
// stream was cut into deltas. After final() nothing more comes and partial matches
// are misses.
//
//   stream:  [ released (dropped) | kept: base() .. end() ]
//
// JsonValueScanner finds where one JSON value ends, byte by byte, without building it.
#pragma once
#include <algorithm>
#include <string>
#include <string_view>

namespace tessera {

class TextScan {
 public:
  enum class Match { NO, PARTIAL, FULL };

  void append(std::string_view s) { buf_.append(s); }
  void set_final() { final_ = true; }
  bool final() const { return final_; }

  size_t base() const { return base_; }
  size_t end() const { return base_ + buf_.size(); }
  char at(size_t pos) const { return buf_[pos - base_]; }
  std::string_view view(size_t from, size_t to) const {
    return std::string_view(buf_).substr(from - base_, to - from);
  }

  // Whether `lit` occurs at `pos`: FULL, PARTIAL (the text ends inside a prefix of it, and
  // more may come), or NO.
  Match match(size_t pos, std::string_view lit) const {
    const size_t avail = end() - pos;
    const size_t n = std::min(avail, lit.size());
    if (view(pos, pos + n) != lit.substr(0, n)) return Match::NO;
    if (n == lit.size()) return Match::FULL;
    return final_ ? Match::NO : Match::PARTIAL;
  }

  // Lets go of the text before `keep` (positions stay valid from `keep` on).
  void release(size_t keep) {
    if (keep <= base_) return;
    buf_.erase(0, keep - base_);
    base_ = keep;
  }

 private:
  std::string buf_;
  size_t base_ = 0;
  bool final_ = false;
};

inline bool is_json_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

// Where a JSON value ends. push() each byte of the value from its first (not leading
// whitespace): MORE (the byte belongs to it, more follow), DONE (the byte was its last),
// DONE_BEFORE (a number or literal ended before this byte, which is not part of it), or
// ERROR (not JSON). Containers are checked for bracket balance and strings for escapes;
// the value is not validated further (a grammar guarantees that, when there is one).
class JsonValueScanner {
 public:
  enum class Result { MORE, DONE, DONE_BEFORE, ERROR };

  void reset() {
    mode_ = Mode::START;
    stack_.clear();
    in_string_ = escape_ = false;
  }
  bool started() const { return mode_ != Mode::START; }
  // At the end of the text a number or literal in progress is complete.
  bool complete_at_end() const { return mode_ == Mode::SCALAR; }

  Result push(char c) {
    switch (mode_) {
      case Mode::START:
        if (c == '{' || c == '[') {
          mode_ = Mode::CONTAINER;
          stack_.push_back(c == '{' ? '}' : ']');
          return Result::MORE;
        }
        if (c == '"') {
          mode_ = Mode::CONTAINER;  // a lone string: closed by its quote at depth 0
          in_string_ = true;
          return Result::MORE;
        }
        if (c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n') {
          mode_ = Mode::SCALAR;
          return Result::MORE;
        }
        return Result::ERROR;
      case Mode::SCALAR:
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            c == '-' || c == '+' || c == '.')
          return Result::MORE;
        mode_ = Mode::ENDED;
        return Result::DONE_BEFORE;
      case Mode::CONTAINER:
        if (in_string_) {
          if (escape_) {
            escape_ = false;
          } else if (c == '\\') {
            escape_ = true;
          } else if (c == '"') {
            in_string_ = false;
            if (stack_.empty()) return finish();
          }
          return Result::MORE;
        }
        if (c == '"') {
          in_string_ = true;
        } else if (c == '{' || c == '[') {
          stack_.push_back(c == '{' ? '}' : ']');
        } else if (c == '}' || c == ']') {
          if (stack_.empty() || stack_.back() != c) return Result::ERROR;
          stack_.pop_back();
          if (stack_.empty()) return finish();
        }
        return Result::MORE;
      case Mode::ENDED:
        return Result::ERROR;
    }
    return Result::ERROR;
  }

 private:
  enum class Mode { START, SCALAR, CONTAINER, ENDED };
  Result finish() {
    mode_ = Mode::ENDED;
    return Result::DONE;
  }
  Mode mode_ = Mode::START;
  std::string stack_;  // expected closing brackets, innermost last
  bool in_string_ = false, escape_ = false;
};

}  // namespace tessera
