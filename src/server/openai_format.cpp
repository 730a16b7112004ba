#include "server/openai_format.h"

#include <cmath>
#include <random>

#include "tokenizer/tokenizer.h"

namespace tessera {

using nlohmann::json;

namespace {

// JSON has no -inf; OpenAI-compatible servers report -9999 for impossible tokens.
double finite_logprob(float lp) {
  return std::isfinite(lp) ? lp : -9999.0;
}

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

json finish_json(RequestStatus r) {
  const char* text = finish_reason_text(r);
  return text ? json(text) : json(nullptr);
}

json header(const ResponseMeta& m, const char* object) {
  return {{"id", m.id}, {"object", object}, {"created", m.created}, {"model", m.model}};
}

}  // namespace

std::string new_response_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s-%016llx%08llx", prefix, static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng() & 0xffffffffu));
  return buf;
}

json chat_finish_reason(RequestStatus r, bool has_tool_calls) {
  if (r == RequestStatus::FINISHED_STOPPED && has_tool_calls) return "tool_calls";
  return finish_json(r);
}

json chat_message_json(const ParsedMessage& m) {
  json msg = {{"role", "assistant"}};
  msg["content"] = m.content.empty() && !m.tool_calls.empty() ? json(nullptr) : json(m.content);
  if (!m.reasoning.empty()) msg["reasoning_content"] = m.reasoning;
  if (!m.tool_calls.empty()) {
    json calls = json::array();
    for (const ToolCall& c : m.tool_calls)
      calls.push_back({{"id", c.id},
                       {"type", "function"},
                       {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    msg["tool_calls"] = std::move(calls);
  }
  return msg;
}

json message_delta_json(const MessageDelta& d) {
  switch (d.kind) {
    case MessageDelta::Kind::CONTENT:
      return {{"content", d.text}};
    case MessageDelta::Kind::REASONING:
      return {{"reasoning_content", d.text}};
    case MessageDelta::Kind::TOOL_CALL_BEGIN:
      return {{"tool_calls", json::array({{{"index", d.index},
                                           {"id", d.id},
                                           {"type", "function"},
                                           {"function", {{"name", d.name}, {"arguments", ""}}}}})}};
    case MessageDelta::Kind::TOOL_CALL_ARGS:
      return {{"tool_calls",
               json::array({{{"index", d.index}, {"function", {{"arguments", d.text}}}}})}};
  }
  return json::object();
}

json usage_json(const UsageCounts& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

json chat_logprobs(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens,
                   int top_logprobs) {
  json content = json::array();
  for (const GeneratedToken& t : tokens) {
    const std::string piece = tok.token_to_piece(t.token);
    json top = json::array();
    for (int k = 0; k < top_logprobs && k < static_cast<int>(t.top.size()); ++k) {
      const std::string p = tok.token_to_piece(t.top[k].token);
      top.push_back(
          {{"token", p}, {"logprob", finite_logprob(t.top[k].logprob)}, {"bytes", bytes_of(p)}});
    }
    content.push_back({{"token", piece},
                       {"logprob", finite_logprob(t.logprob)},
                       {"bytes", bytes_of(piece)},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}};
}

void CompletionLogprobs::append(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens,
                                int top_logprobs) {
  for (const GeneratedToken& t : tokens) {
    const std::string piece = tok.token_to_piece(t.token);
    tokens_.push_back(piece);
    token_logprobs_.push_back(finite_logprob(t.logprob));
    json top = json::object();
    for (int k = 0; k < top_logprobs && k < static_cast<int>(t.top.size()); ++k)
      top[tok.token_to_piece(t.top[k].token)] = finite_logprob(t.top[k].logprob);
    top_.push_back(top_logprobs > 0 ? std::move(top) : json(nullptr));
    offsets_.push_back(offset_);
    offset_ += piece.size();
  }
}

json CompletionLogprobs::to_json() const {
  return {{"tokens", tokens_},
          {"token_logprobs", token_logprobs_},
          {"top_logprobs", top_},
          {"text_offset", offsets_}};
}

json chat_response(const ResponseMeta& m, const Tokenizer& tok,
                   const std::vector<ChoiceResult>& choices, bool logprobs, int top_logprobs,
                   const UsageCounts& usage) {
  json out = header(m, "chat.completion");
  json arr = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& c = choices[i];
    const bool calls = c.message && !c.message->tool_calls.empty();
    arr.push_back({{"index", i},
                   {"message", c.message ? chat_message_json(*c.message)
                                         : json{{"role", "assistant"}, {"content", c.text}}},
                   {"logprobs", logprobs ? chat_logprobs(tok, c.tokens, top_logprobs) : json()},
                   {"finish_reason", chat_finish_reason(c.finish, calls)}});
  }
  out["choices"] = std::move(arr);
  out["usage"] = usage_json(usage);
  return out;
}

json completion_response(const ResponseMeta& m, const Tokenizer& tok,
                         const std::vector<ChoiceResult>& choices, bool logprobs, int top_logprobs,
                         const UsageCounts& usage) {
  json out = header(m, "text_completion");
  json arr = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& c = choices[i];
    json lp;
    if (logprobs) {
      CompletionLogprobs l;
      l.append(tok, c.tokens, top_logprobs);
      lp = l.to_json();
    }
    arr.push_back({{"index", i},
                   {"text", c.text},
                   {"logprobs", std::move(lp)},
                   {"finish_reason", finish_json(c.finish)}});
  }
  out["choices"] = std::move(arr);
  out["usage"] = usage_json(usage);
  return out;
}

json chat_chunk(const ResponseMeta& m, int index, const json& delta, const json& logprobs,
                RequestStatus finish, bool usage_null) {
  return chat_chunk(m, index, delta, logprobs, finish_json(finish), usage_null);
}

json chat_chunk(const ResponseMeta& m, int index, const json& delta, const json& logprobs,
                const json& finish_reason, bool usage_null) {
  json out = header(m, "chat.completion.chunk");
  out["choices"] = json::array({{{"index", index},
                                 {"delta", delta},
                                 {"logprobs", logprobs},
                                 {"finish_reason", finish_reason}}});
  if (usage_null) out["usage"] = nullptr;
  return out;
}

json completion_chunk(const ResponseMeta& m, int index, const std::string& text,
                      const json& logprobs, RequestStatus finish, bool usage_null) {
  json out = header(m, "text_completion");
  out["choices"] = json::array({{{"index", index},
                                 {"text", text},
                                 {"logprobs", logprobs},
                                 {"finish_reason", finish_json(finish)}}});
  if (usage_null) out["usage"] = nullptr;
  return out;
}

json usage_chunk(const ResponseMeta& m, bool chat, const UsageCounts& usage) {
  json out = header(m, chat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = json::array();
  out["usage"] = usage_json(usage);
  return out;
}

}  // namespace tessera
