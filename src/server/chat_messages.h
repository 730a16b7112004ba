// Chat request fields that feed the chat template: the messages, normalized to the form
// Hugging Face templates expect (what transformers' apply_chat_template receives from a
// caller following its tool-use convention, and what vLLM hands its templates), and the
// template's extra inputs.
#pragma once
#include <nlohmann/json.hpp>

#include "server/openai_request.h"

namespace tessera {

// Validates `messages` (a non-empty array) and returns them ready for a template:
//   - content: a string, or text parts joined with "\n"; null stays null, except on an
//     assistant turn with tool calls, where it becomes "" (templates concatenate it);
//   - assistant tool_calls: [{"id"?, "type"?: "function", "function": {"name", "arguments"}}]
//     with `arguments` (OpenAI: a JSON text) parsed into the mapping templates write with
//     tojson; a null or empty list is dropped (templates test whether the key exists);
//   - tool: optional string tool_call_id;
//   - reasoning given back as reasoning_content, reasoning or thinking is put under both
//     reasoning_content and thinking, as transformers does.
// Other keys (name, ...) pass through. Keys keep the client's order.
nlohmann::ordered_json parse_chat_messages(const nlohmann::ordered_json& msgs);

// chat_template_kwargs (an object whose keys become template variables; messages, tools,
// documents and add_generation_prompt have their own fields), documents, and
// add_generation_prompt. continue_final_message and a per-request chat_template are refused.
void parse_template_fields(const nlohmann::ordered_json& body, CompletionRequest& r);

}  // namespace tessera
