// A chat completion's output text -> its message: reasoning first (ReasoningParser), tool
// calls out of the answer (ToolCallParser), the rest content. One ChatOutputParser per
// choice; streamed and non-streamed responses both run it, so they always agree.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/message_delta.h"
#include "server/reasoning_parser.h"
#include "server/tool_parser.h"

namespace tessera {

// How one request's output is read: chosen from the chat template (or --reasoning-parser /
// --tool-call-parser), the request's tools and its rendered prompt.
struct ChatOutputOptions {
  ReasoningSyntax reasoning = ReasoningSyntax::NONE;
  bool starts_in_reasoning = false;  // the prompt opened the thought
  bool parse_tools = false;          // tools given and tool_choice is not none
  ToolSyntax tools = ToolSyntax::GENERIC;
};

class ChatOutputParser {
 public:
  explicit ChatOutputParser(const ChatOutputOptions& o, std::function<std::string()> new_id = {});

  void feed(std::string_view text, std::vector<MessageDelta>& out);
  void finish(std::vector<MessageDelta>& out);
  int n_tool_calls() const { return tools_ ? tools_->n_calls() : 0; }

 private:
  void route(std::vector<MessageDelta>& out);

  std::optional<ReasoningParser> reasoning_;
  std::optional<ToolCallParser> tools_;
  std::vector<MessageDelta> tmp_;
};

// The whole message of a complete output.
ParsedMessage parse_chat_output(const ChatOutputOptions& o, std::string_view text,
                                std::function<std::string()> new_id = {});

}  // namespace tessera
