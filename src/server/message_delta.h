// The pieces an assistant message is parsed into, as it streams: reasoning text, answer
// text, and tool calls (a call's start with its id and name, then fragments of its
// arguments). Transport-free: openai_format turns them into OpenAI deltas; the whole
// message is the deltas applied in order (ParsedMessage::apply), which is also how a
// non-streamed response is built, so both always agree.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

struct MessageDelta {
  enum class Kind {
    CONTENT,          // text: answer text
    REASONING,        // text: reasoning text
    TOOL_CALL_BEGIN,  // index, id, name: a new call (its arguments follow)
    TOOL_CALL_ARGS,   // index, text: the next fragment of call `index`'s arguments
  };
  Kind kind = Kind::CONTENT;
  std::string text;
  int index = -1;  // TOOL_CALL_*: the call's position in the message (0, 1, ...)
  std::string id, name;
};

// Appends text of `kind` (CONTENT, REASONING, or TOOL_CALL_ARGS of call `index`), merged into
// the last delta when that one is of the same kind (and call).
inline void push_text(std::vector<MessageDelta>& out, MessageDelta::Kind kind,
                      std::string_view text, int index = -1) {
  if (text.empty()) return;
  if (!out.empty() && out.back().kind == kind && out.back().index == index) {
    out.back().text.append(text);
    return;
  }
  MessageDelta d;
  d.kind = kind;
  d.text.assign(text);
  d.index = index;
  out.push_back(std::move(d));
}

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text, as the model wrote it
};

struct ParsedMessage {
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> tool_calls;

  void apply(const MessageDelta& d) {
    switch (d.kind) {
      case MessageDelta::Kind::CONTENT:
        content += d.text;
        break;
      case MessageDelta::Kind::REASONING:
        reasoning += d.text;
        break;
      case MessageDelta::Kind::TOOL_CALL_BEGIN:
        tool_calls.push_back({d.id, d.name, ""});
        break;
      case MessageDelta::Kind::TOOL_CALL_ARGS:
        tool_calls.at(static_cast<size_t>(d.index)).arguments += d.text;
        break;
    }
  }
};

}  // namespace tessera
