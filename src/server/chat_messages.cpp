#include "server/chat_messages.h"

#include <string>

#include "server/request_fields.h"

namespace tessera {

using namespace request_fields;

namespace {

// Chat content: a string, null, or text parts.
json message_content(const json& c, const std::string& param) {
  if (c.is_string() || c.is_null()) return c;
  if (!c.is_array()) bad(param, "'content' must be a string or an array of content parts");
  std::string text;
  for (const json& part : c) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      bad(param, "each content part must be an object with a 'type'");
    const std::string type = part["type"].get<std::string>();
    if (type != "text") bad(param, "content part type '" + type + "' is not supported");
    if (!part.contains("text") || !part["text"].is_string())
      bad(param, "a text content part needs a string 'text'");
    if (!text.empty()) text += "\n";  // how vLLM joins text parts
    text += part["text"].get<std::string>();
  }
  return text;
}

// One tool call of an assistant turn, with `arguments` as a mapping.
json tool_call(const json& tc, const std::string& p) {
  if (!tc.is_object()) bad(p, "'" + p + "' must be an object");
  json out = tc;
  get_string(tc, "id", p + ".id");
  if (const std::string* type = get_string(tc, "type", p + ".type"); type && *type != "function")
    bad(p + ".type", "tool call type '" + *type + "' is not supported (expected \"function\")");
  const json* fn = field(tc, "function");
  if (!fn || !fn->is_object()) bad(p + ".function", "'" + p + ".function' must be an object");
  const std::string q = p + ".function";
  const std::string* name = get_string(*fn, "name", q + ".name");
  if (!name || name->empty()) bad(q + ".name", "'" + q + ".name' is required");
  const json* args = field(*fn, "arguments");
  if (!args) bad(q + ".arguments", "'" + q + ".arguments' is required");
  if (args->is_string()) {
    json parsed;
    try {
      parsed = json::parse(args->get<std::string>());
    } catch (const json::parse_error& e) {
      bad(q + ".arguments", "'" + q + ".arguments' is not valid JSON: " + e.what());
    }
    if (!parsed.is_object())
      bad(q + ".arguments", "'" + q + ".arguments' must be the JSON text of an object");
    out["function"]["arguments"] = std::move(parsed);
  } else if (!args->is_object()) {
    bad(q + ".arguments", "'" + q + ".arguments' must be a JSON string (or an object)");
  }
  return out;
}

json chat_message(const json& m, size_t i) {
  const std::string p = "messages[" + std::to_string(i) + "]";
  if (!m.is_object()) bad(p, "each message must be an object");
  const std::string* role_p = get_string(m, "role", p + ".role");
  if (!role_p) bad(p + ".role", "each message needs a string 'role'");
  const std::string role = *role_p;
  if (role != "system" && role != "user" && role != "assistant" && role != "tool" &&
      role != "developer")
    bad(p + ".role",
        "unknown role '" + role + "' (expected system, developer, user, assistant or tool)");
  json out = m;  // keeps name and other keys for the template
  out["content"] =
      message_content(m.contains("content") ? m["content"] : json(nullptr), p + ".content");

  if (auto it = out.find("tool_calls"); it != out.end()) {
    if (it->is_null() || (it->is_array() && it->empty())) {
      out.erase(it);
    } else {
      if (role != "assistant")
        bad(p + ".tool_calls", "only assistant messages may have 'tool_calls'");
      if (!it->is_array()) bad(p + ".tool_calls", "'" + p + ".tool_calls' must be an array");
      json calls = json::array();
      for (size_t k = 0; k < it->size(); ++k)
        calls.push_back(tool_call((*it)[k], p + ".tool_calls[" + std::to_string(k) + "]"));
      *it = std::move(calls);
      if (out["content"].is_null()) out["content"] = "";
    }
  }
  get_string(m, "tool_call_id", p + ".tool_call_id");  // type check only

  // Reasoning handed back: transformers reads reasoning_content, thinking or reasoning
  // (the first non-null) and passes it under reasoning_content and thinking.
  for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
    const json* r = field(m, key);
    if (!r) continue;
    const json value = *r;
    if (!out.contains("thinking") || out["thinking"].is_null()) out["thinking"] = value;
    out["reasoning_content"] = value;
    break;
  }
  return out;
}

}  // namespace

json parse_chat_messages(const json& msgs) {
  if (!msgs.is_array() || msgs.empty()) bad("messages", "'messages' must be a non-empty array");
  json out = json::array();
  for (size_t i = 0; i < msgs.size(); ++i) out.push_back(chat_message(msgs[i], i));
  return out;
}

void parse_template_fields(const json& body, CompletionRequest& r) {
  if (const json* kw = field(body, "chat_template_kwargs")) {
    if (!kw->is_object()) bad("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    for (const char* own : {"messages", "tools", "documents", "add_generation_prompt"})
      if (kw->contains(own))
        bad("chat_template_kwargs", std::string("'chat_template_kwargs' must not set '") + own +
                                        "'; use the request field of that name");
    r.template_kwargs = *kw;
  }
  if (const json* docs = field(body, "documents")) {
    if (!docs->is_array()) bad("documents", "'documents' must be an array of objects");
    for (const json& d : *docs)
      if (!d.is_object()) bad("documents", "'documents' must be an array of objects");
    r.documents = *docs;
  }
  r.add_generation_prompt = get_bool(body, "add_generation_prompt", true);
  if (get_bool(body, "continue_final_message", false))
    bad("continue_final_message", "'continue_final_message' is not supported");
  if (field(body, "chat_template"))
    bad("chat_template", "a per-request 'chat_template' is not supported; the server's is used");
}

}  // namespace tessera
