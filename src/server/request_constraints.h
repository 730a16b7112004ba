// Parsing of the request fields that shape the output: response_format and the extra
// structured-output fields of vLLM and llama-server into one OutputConstraint, and tools /
// tool_choice / parallel_tool_calls into a ToolRequest. Everything is validated here; a bad
// or conflicting field throws ApiError(400) naming it. Whether a schema, regex or grammar
// compiles is the grammar compiler's to say.
#pragma once
#include <nlohmann/json.hpp>

#include "server/output_constraint.h"

namespace tessera {

// Accepted (at most one of them may constrain the output):
//   response_format: {"type": "text"} | {"type": "json_object"}
//                    | {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}
//                    (llama-server's {"type": "json_object" | "json_schema", "schema": {...}}
//                    too)
//   vLLM:   guided_json (schema object or its JSON text), guided_regex, guided_choice,
//           guided_grammar; structured_outputs {json | regex | choice | grammar | json_object}
//   llama-server: json_schema (schema object), grammar (GBNF; "" means none)
OutputConstraint parse_output_constraint(const nlohmann::ordered_json& body);

// tools / tool_choice / parallel_tool_calls of a chat request. tool_choice defaults to auto
// with tools and none without; required or a named function needs tools, and the name
// must be one of them.
ToolRequest parse_tool_request(const nlohmann::ordered_json& body);

// Cross-field rule: a forced tool call (required / named) is the whole output, so it
// cannot also satisfy an output constraint.
void check_tools_vs_constraint(const ToolRequest& tools, const OutputConstraint& c);

}  // namespace tessera
