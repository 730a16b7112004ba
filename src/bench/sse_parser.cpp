#include "bench/sse_parser.h"

namespace tessera::bench {

void SseParser::feed(std::string_view bytes, const Handler& on_event) {
  for (char c : bytes) {
    if (c == '\n' && last_was_cr_) {  // the LF of a CRLF: the line already ended
      last_was_cr_ = false;
      continue;
    }
    last_was_cr_ = (c == '\r');
    if (c == '\n' || c == '\r') {
      process_line(line_, on_event);
      line_.clear();
    } else {
      line_ += c;
    }
  }
}

void SseParser::finish(const Handler& on_event) {
  if (!line_.empty()) process_line(line_, on_event);
  line_.clear();
  dispatch(on_event);
}

void SseParser::process_line(std::string_view line, const Handler& on_event) {
  if (line.empty()) {
    dispatch(on_event);
    return;
  }
  if (line.front() == ':') return;  // comment / keep-alive
  std::string_view field = line, value;
  if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) data_ += '\n';
    data_ += value;
    has_data_ = true;
  } else if (field == "event") {
    event_ = value;
  } else if (field == "error") {
    event_ = "error";
    if (has_data_) data_ += '\n';
    data_ += value;
    has_data_ = true;
  }
  // "id", "retry" and unknown fields do not matter here.
}

void SseParser::dispatch(const Handler& on_event) {
  if (has_data_) on_event(SseEvent{event_.empty() ? "message" : event_, data_});
  event_.clear();
  data_.clear();
  has_data_ = false;
}

}  // namespace tessera::bench
