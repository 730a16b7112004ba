// OpenAI response bodies: full responses and stream chunks for /v1/chat/completions and
// /v1/completions, usage and the two logprobs formats. Pure functions of their inputs.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/generation.h"
#include "server/message_delta.h"

namespace tessera {

class Tokenizer;

// Identity shared by every body of one response.
struct ResponseMeta {
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;
  std::string model;
};

std::string new_response_id(const char* prefix);
// A chat choice's finish_reason: "tool_calls" when it ended (stop) with tool calls.
nlohmann::json chat_finish_reason(RequestStatus r, bool has_tool_calls);
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
  RequestStatus finish = RequestStatus::RUNNING;
  // chat: the text read as a message (reasoning, content, tool calls); without it the
  // message is the text as content.
  std::optional<ParsedMessage> message;
};

// A chat message: {"role": "assistant", "content", ["reasoning_content"], ["tool_calls"]}.
// content is null when the message is only tool calls; reasoning_content is present when
// there was reasoning; each call is {"id", "type": "function", "function": {"name",
// "arguments": JSON text}}.
nlohmann::json chat_message_json(const ParsedMessage& m);
// A stream delta: {"content"} | {"reasoning_content"} | {"tool_calls": [{"index", "id",
// "type": "function", "function": {"name", "arguments": ""}}]} for a call's start, then
// {"tool_calls": [{"index", "function": {"arguments": fragment}}]} -- OpenAI's shapes.
nlohmann::json message_delta_json(const MessageDelta& d);

nlohmann::json chat_response(const ResponseMeta& m, const Tokenizer& tok,
                             const std::vector<ChoiceResult>& choices, bool logprobs,
                             int top_logprobs, const UsageCounts& usage);
nlohmann::json completion_response(const ResponseMeta& m, const Tokenizer& tok,
                                   const std::vector<ChoiceResult>& choices, bool logprobs,
                                   int top_logprobs, const UsageCounts& usage);

// Stream chunks. `usage_null`: include "usage": null (stream_options.include_usage).
nlohmann::json chat_chunk(const ResponseMeta& m, int index, const nlohmann::json& delta,
                          const nlohmann::json& logprobs, RequestStatus finish, bool usage_null);
// The same with finish_reason given as its JSON value (a string, or null).
nlohmann::json chat_chunk(const ResponseMeta& m, int index, const nlohmann::json& delta,
                          const nlohmann::json& logprobs, const nlohmann::json& finish_reason,
                          bool usage_null);
nlohmann::json completion_chunk(const ResponseMeta& m, int index, const std::string& text,
                                const nlohmann::json& logprobs, RequestStatus finish,
                                bool usage_null);
// The final chunk with no choices and the usage of the whole request.
nlohmann::json usage_chunk(const ResponseMeta& m, bool chat, const UsageCounts& usage);

}  // namespace tessera
