// The chat-specific half of a chat completion's response, between the engine's text and
// the OpenAI bodies: each choice's text read by a ChatOutputParser into content,
// reasoning and tool calls; streamed as chunks, or parsed whole into the message.
// Transport-free: the route writes what these return.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "server/chat_output.h"
#include "server/generation.h"
#include "server/openai_format.h"

namespace tessera {

class Tokenizer;

class ChatStream {
 public:
  ChatStream(int n_choices, const ChatOutputOptions& o, const Tokenizer& tok, bool logprobs,
             int top_logprobs);

  // The chat.completion.chunk bodies for one delta of choice d.index: one chunk per
  // message piece (content, reasoning, a call's start, argument fragments), then, on the
  // choice's last delta, one with an empty delta and the finish reason ("tool_calls" when
  // it made calls). Logprobs of tokens whose text the parsers still hold ride on the next
  // chunk. `usage_null`: include "usage": null (stream_options.include_usage).
  std::vector<nlohmann::json> chunks(const ResponseMeta& m, ChoiceDelta& d, bool usage_null);

 private:
  struct Choice {
    ChatOutputParser parser;
    std::vector<GeneratedToken> pending;  // tokens whose logprobs are not sent yet
  };
  std::vector<Choice> choices_;
  const Tokenizer& tok_;
  bool logprobs_;
  int top_logprobs_;
  std::vector<MessageDelta> deltas_;
};

// Non-streamed: parses each choice's text into its message.
void parse_chat_choices(std::vector<ChoiceResult>& choices, const ChatOutputOptions& o);

}  // namespace tessera
