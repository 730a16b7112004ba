// Incremental parser for a text/event-stream (Server-Sent Events) response body.
// Bytes arrive in arbitrary pieces; complete events come out as soon as their terminating
// blank line has been seen. Follows the WHATWG rules that matter for OpenAI-style
// streams: lines end in LF, CR or CRLF; "data:" lines of one event are joined with LF;
// one space after the colon is dropped; lines starting with ':' are comments. A
// non-standard "error:" field (sent by some servers) is reported as an event of type
// "error" carrying that text as its data.
#pragma once
#include <functional>
#include <string>
#include <string_view>

namespace tessera::bench {

struct SseEvent {
  std::string event;  // "message" unless an "event:" field said otherwise
  std::string data;
};

class SseParser {
 public:
  using Handler = std::function<void(const SseEvent&)>;

  // Consumes `bytes`; calls `on_event` for each event completed by them.
  void feed(std::string_view bytes, const Handler& on_event);
  // End of stream: a last line without its newline, and an event not followed by a
  // blank line, are still delivered.
  void finish(const Handler& on_event);

 private:
  void process_line(std::string_view line, const Handler& on_event);
  void dispatch(const Handler& on_event);

  std::string line_;  // the unfinished current line
  bool last_was_cr_ = false;
  std::string event_, data_;
  bool has_data_ = false;
};

}  // namespace tessera::bench
