#include "server/chat_stream.h"

namespace tessera {

using nlohmann::json;

ChatStream::ChatStream(int n_choices, const ChatOutputOptions& o, const Tokenizer& tok,
                       bool logprobs, int top_logprobs)
    : tok_(tok), logprobs_(logprobs), top_logprobs_(top_logprobs) {
  choices_.reserve(n_choices);
  for (int i = 0; i < n_choices; ++i) choices_.push_back({ChatOutputParser(o), {}});
}

std::vector<json> ChatStream::chunks(const ResponseMeta& m, ChoiceDelta& d, bool usage_null) {
  Choice& c = choices_.at(static_cast<size_t>(d.index));
  if (logprobs_)
    for (GeneratedToken& t : d.tokens) c.pending.push_back(std::move(t));
  deltas_.clear();
  c.parser.feed(d.text, deltas_);
  const bool last = is_finished(d.finish);
  if (last) c.parser.finish(deltas_);

  std::vector<json> out;
  auto take_logprobs = [&]() -> json {
    if (c.pending.empty()) return nullptr;
    json lp = chat_logprobs(tok_, c.pending, top_logprobs_);
    c.pending.clear();
    return lp;
  };
  for (const MessageDelta& md : deltas_)
    out.push_back(chat_chunk(m, d.index, message_delta_json(md), take_logprobs(),
                             RequestStatus::RUNNING, usage_null));
  if (last)
    out.push_back(chat_chunk(m, d.index, json::object(), take_logprobs(),
                             chat_finish_reason(d.finish, c.parser.n_tool_calls() > 0),
                             usage_null));
  return out;
}

void parse_chat_choices(std::vector<ChoiceResult>& choices, const ChatOutputOptions& o) {
  for (ChoiceResult& c : choices) c.message = parse_chat_output(o, c.text);
}

}  // namespace tessera
