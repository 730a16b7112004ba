// OpenAI request bodies parsed into typed, validated structs. Everything a handler needs
// after this point is checked: types, ranges, combinations. A bad field throws ApiError
// (400) naming the field, so no half-validated JSON travels further.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace tessera {

// One prompt of /v1/completions: text to tokenize, or token ids given by the client.
struct PromptInput {
  bool is_ids = false;
  std::string text;
  std::vector<int32_t> ids;
};

struct CompletionRequest {
  bool chat = false;
  std::string model;  // "" when absent
  // chat: [{"role", "content": string, ...}] with content parts joined into a string,
  // ready for the chat template.
  nlohmann::json messages;
  std::vector<PromptInput> prompts;  // completions: one or more
  int max_tokens = 0;                // 0: up to the context length
  int n = 1;                         // choices per prompt
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::vector<std::string> stop;
  bool logprobs = false;
  int top_logprobs = 0;  // alternatives per position (chat: top_logprobs, completions: logprobs)
  GenerateParams gen;    // sampling, ignore_eos, engine logprobs; max_tokens set later
};

constexpr int kMaxTopLogprobs = 20;  // what the engine reports at most
constexpr int kMaxChoices = 128;

// `n_vocab` bounds token ids in prompts, logit_bias and stop_token_ids.
CompletionRequest parse_chat_request(const nlohmann::json& body, int n_vocab);
CompletionRequest parse_completion_request(const nlohmann::json& body, int n_vocab);

// The pieces, for callers that take a request's parts elsewhere than from an HTTP body (the
// Python package): every field of a completions request but the prompt (sampling, n, stop,
// max_tokens, logprobs as an integer), and a chat request's `messages` checked and
// normalized for the chat template. Both throw ApiError naming the field.
CompletionRequest parse_completion_options(const nlohmann::json& body, int n_vocab);
nlohmann::json parse_chat_messages(const nlohmann::json& messages);

}  // namespace tessera
