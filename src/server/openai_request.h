// OpenAI request bodies parsed into typed, validated structs. Everything a handler needs
// after this point is checked: types, ranges, combinations. A bad field throws ApiError
// (400) naming the field, so no half-validated JSON travels further.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/output_constraint.h"

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
  // chat: the messages as the chat template receives them (Hugging Face's convention):
  // content parts joined into a string; an assistant turn's tool calls with `arguments`
  // as a mapping, its null content as ""; null or empty `tool_calls` dropped; reasoning
  // under `reasoning_content` (and `thinking`). Keys keep the client's order.
  nlohmann::ordered_json messages;
  // chat: chat_template_kwargs (an object; e.g. enable_thinking), given to the template
  // beside messages, tools and add_generation_prompt.
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();
  nlohmann::ordered_json documents;   // chat: `documents` for RAG templates (null: none)
  bool add_generation_prompt = true;  // chat
  ToolRequest tools;                  // chat: tools, tool_choice, parallel_tool_calls
  OutputConstraint constraint;        // response_format and the extra constraint fields
  std::vector<PromptInput> prompts;   // completions: one or more
  int max_tokens = 0;                 // 0: up to the context length
  int n = 1;                          // choices per prompt
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::vector<std::string> stop;
  bool logprobs = false;
  int top_logprobs = 0;  // alternatives per position (chat: top_logprobs, completions: logprobs)
  GenerateParams gen;    // sampling, ignore_eos, engine logprobs; max_tokens set later
};

constexpr int kMaxTopLogprobs = 20;  // what the engine reports at most
constexpr int kMaxChoices = 128;

// Nesting deeper than this is refused: request JSON is walked recursively afterwards
// (copies, the template's values, tojson), and a request must not exhaust the stack.
constexpr int kMaxJsonDepth = 256;

// A request body: JSON with its objects' key order kept, at most kMaxJsonDepth deep.
// Throws ApiError(400) otherwise.
nlohmann::ordered_json parse_request_body(const std::string& text);

// `n_vocab` bounds token ids in prompts, logit_bias and stop_token_ids. Bodies are parsed
// as ordered_json so that tool schemas and arguments keep the client's key order.
CompletionRequest parse_chat_request(const nlohmann::ordered_json& body, int n_vocab);
CompletionRequest parse_completion_request(const nlohmann::ordered_json& body, int n_vocab);
// Every field of a completions request but the prompt and the output constraint (sampling,
// n, stop, max_tokens, logprobs as an integer): for callers that take the prompt elsewhere
// (the Python package). Throws ApiError naming the field.
CompletionRequest parse_completion_options(const nlohmann::ordered_json& body, int n_vocab);

}  // namespace tessera
