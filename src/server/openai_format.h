// OpenAI response bodies: full responses and stream chunks for /v1/chat/completions and
// /v1/completions, usage and the two logprobs formats. Pure functions of their inputs.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/generation.h"

namespace tessera {

class Tokenizer;

// Identity shared by every body of one response.
struct ResponseMeta {
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;
  std::string model;
};

std::string new_response_id(const char* prefix);
const char* finish_reason_text(FinishReason r);
nlohmann::json usage_json(const UsageCounts& u);

// Chat format: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}.
nlohmann::json chat_logprobs(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens,
                             int top_logprobs);

// Completions format: parallel arrays tokens / token_logprobs / top_logprobs / text_offset.
// Appends across deltas; text_offset counts bytes of the choice's text so far.
class CompletionLogprobs {
 public:
  void append(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens, int top_logprobs);
  nlohmann::json to_json() const;

 private:
  nlohmann::json tokens_ = nlohmann::json::array(), token_logprobs_ = nlohmann::json::array(),
                 top_ = nlohmann::json::array(), offsets_ = nlohmann::json::array();
  size_t offset_ = 0;
};

// One finished choice of a non-streamed response.
struct ChoiceResult {
  std::string text;
  std::vector<GeneratedToken> tokens;
  FinishReason finish = FinishReason::NONE;
};

nlohmann::json chat_response(const ResponseMeta& m, const Tokenizer& tok,
                             const std::vector<ChoiceResult>& choices, bool logprobs,
                             int top_logprobs, const UsageCounts& usage);
nlohmann::json completion_response(const ResponseMeta& m, const Tokenizer& tok,
                                   const std::vector<ChoiceResult>& choices, bool logprobs,
                                   int top_logprobs, const UsageCounts& usage);

// Stream chunks. `usage_null`: include "usage": null (stream_options.include_usage).
nlohmann::json chat_chunk(const ResponseMeta& m, int index, const nlohmann::json& delta,
                          const nlohmann::json& logprobs, FinishReason finish, bool usage_null);
nlohmann::json completion_chunk(const ResponseMeta& m, int index, const std::string& text,
                                const nlohmann::json& logprobs, FinishReason finish,
                                bool usage_null);
// The final chunk with no choices and the usage of the whole request.
nlohmann::json usage_chunk(const ResponseMeta& m, bool chat, const UsageCounts& usage);

}  // namespace tessera
