#include "server/chat_output.h"

namespace tessera {

ChatOutputParser::ChatOutputParser(const ChatOutputOptions& o,
                                   std::function<std::string()> new_id) {
  if (o.reasoning != ReasoningSyntax::NONE) reasoning_.emplace(o.starts_in_reasoning);
  if (o.parse_tools) tools_.emplace(o.tools, std::move(new_id));
}

// The reasoning parser's output in tmp_: thoughts go out, answer text through the tool
// parser (when there is one).
void ChatOutputParser::route(std::vector<MessageDelta>& out) {
  for (MessageDelta& d : tmp_) {
    if (d.kind == MessageDelta::Kind::CONTENT && tools_)
      tools_->feed(d.text, out);
    else
      push_text(out, d.kind, d.text);
  }
  tmp_.clear();
}

void ChatOutputParser::feed(std::string_view text, std::vector<MessageDelta>& out) {
  if (reasoning_) {
    reasoning_->feed(text, tmp_);
    route(out);
  } else if (tools_) {
    tools_->feed(text, out);
  } else {
    push_text(out, MessageDelta::Kind::CONTENT, text);
  }
}

void ChatOutputParser::finish(std::vector<MessageDelta>& out) {
  if (reasoning_) {
    reasoning_->finish(tmp_);
    route(out);
  }
  if (tools_) tools_->finish(out);
}

ParsedMessage parse_chat_output(const ChatOutputOptions& o, std::string_view text,
                                std::function<std::string()> new_id) {
  ChatOutputParser p(o, std::move(new_id));
  std::vector<MessageDelta> deltas;
  p.feed(text, deltas);
  p.finish(deltas);
  ParsedMessage m;
  for (const MessageDelta& d : deltas) m.apply(d);
  return m;
}

}  // namespace tessera
