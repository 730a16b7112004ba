// What a request asks of the shape of its output, as typed data: the structured-output
// constraint (response_format and the vLLM / llama-server extra fields) and the tools with
// tool_choice. Plain data with no behaviour: the request parser fills it after validation,
// the grammar compiler turns it into a grammar, the chat template receives the tools.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tessera {

// Which language the output must belong to.
enum class ConstraintKind {
  NONE,         // free text (also response_format {"type": "text"})
  JSON_OBJECT,  // any JSON object (response_format json_object)
  JSON_SCHEMA,  // JSON matching `schema`
  REGEX,        // text matching `pattern` (whole output)
  CHOICE,       // exactly one of `choices`
  GRAMMAR,      // the GBNF grammar `grammar` (llama.cpp syntax, root rule "root")
};

struct OutputConstraint {
  ConstraintKind kind = ConstraintKind::NONE;
  // The request field it came from ("response_format", "guided_json", "json_schema",
  // "structured_outputs", ...), for the 400 the compiler raises on what it cannot honor.
  std::string field;
  nlohmann::ordered_json schema;     // JSON_SCHEMA: a JSON object, keys in the client's order
  std::string schema_name;           // JSON_SCHEMA from response_format: json_schema.name
  bool strict = false;               // JSON_SCHEMA from response_format: json_schema.strict
  std::string pattern;               // REGEX
  std::vector<std::string> choices;  // CHOICE: non-empty
  std::string grammar;               // GRAMMAR: non-empty GBNF text
};

// One function the model may call (`tools[i].function`).
struct ToolDef {
  std::string name;  // non-empty, unique within the request
  std::string description;
  // The parameters' JSON Schema (an object). A function declared without parameters
  // takes none: {"type": "object", "properties": {}, "additionalProperties": false}.
  nlohmann::ordered_json parameters;
  bool strict = false;
};

enum class ToolChoice {
  NONE,      // never call (the default without tools)
  AUTO,      // the model decides (the default with tools)
  REQUIRED,  // at least one call, nothing else
  NAMED,     // exactly the function `ToolRequest::named`
};

struct ToolRequest {
  std::vector<ToolDef> tools;
  ToolChoice choice = ToolChoice::NONE;
  std::string named;           // NAMED: a name in `tools`
  bool parallel = true;        // parallel_tool_calls: more than one call per turn allowed
  nlohmann::ordered_json raw;  // the `tools` array as the client sent it (null: none),
                               // which is what chat templates receive as `tools`

  // Tool calls are parsed out of (and, with a grammar, forced into) the output.
  bool active() const { return !tools.empty() && choice != ToolChoice::NONE; }
  // The functions a call may name: all, or only the named one.
  std::vector<const ToolDef*> callable() const {
    std::vector<const ToolDef*> out;
    for (const ToolDef& t : tools)
      if (choice != ToolChoice::NAMED || t.name == named) out.push_back(&t);
    return out;
  }
};

}  // namespace tessera
