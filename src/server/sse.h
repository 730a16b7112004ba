// Server-sent events framing for streamed completions:
//   data: {json}\n\n   ...   data: [DONE]\n\n
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace tessera {

// JSON text for a response. Invalid UTF-8 (a token piece that splits a character, shown
// in logprobs) becomes U+FFFD instead of failing the response.
inline std::string json_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline std::string sse_data(const nlohmann::json& j) {
  return "data: " + json_text(j) + "\n\n";
}

inline const char* sse_done() {
  return "data: [DONE]\n\n";
}

}  // namespace tessera
