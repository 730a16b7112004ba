#include "server/tool_format.h"

#include "core/error.h"

namespace tessera {

using ojson = nlohmann::ordered_json;
// std::string literals: assigning a char array to a string member trips GCC 12's false
// -Wrestrict warning.
using namespace std::string_literals;

ToolSyntax detect_tool_syntax(std::string_view src) {
  auto has = [&](std::string_view s) { return src.find(s) != std::string_view::npos; };
  if (has("[TOOL_CALLS]")) return has("[ARGS]") ? ToolSyntax::MISTRAL_ARGS : ToolSyntax::MISTRAL;
  if (has("<tool_call>")) return ToolSyntax::HERMES;
  if (has("<|python_tag|>") || (has("<|start_header_id|>") && has("ipython")))
    return ToolSyntax::LLAMA3_JSON;
  return ToolSyntax::GENERIC;
}

ToolSyntax tool_syntax_from_name(const std::string& name, std::string_view template_source) {
  if (name.empty() || name == "auto") return detect_tool_syntax(template_source);
  if (name == "hermes") return ToolSyntax::HERMES;
  if (name == "llama3_json") return ToolSyntax::LLAMA3_JSON;
  if (name == "mistral")
    return template_source.find("[ARGS]") != std::string_view::npos ? ToolSyntax::MISTRAL_ARGS
                                                                    : ToolSyntax::MISTRAL;
  if (name == "generic") return ToolSyntax::GENERIC;
  throw Error("unknown tool-call parser '" + name +
              "' (expected auto, hermes, llama3_json, mistral or generic)");
}

const char* tool_syntax_name(ToolSyntax s) {
  switch (s) {
    case ToolSyntax::HERMES:
      return "hermes";
    case ToolSyntax::LLAMA3_JSON:
      return "llama3_json";
    case ToolSyntax::MISTRAL:
    case ToolSyntax::MISTRAL_ARGS:
      return "mistral";
    case ToolSyntax::GENERIC:
      return "generic";
  }
  return "generic";
}

namespace {

// {"name": f, <args_field>: parameters}, name first.
ojson call_object_schema(const ToolDef& t, const char* args_field) {
  return {{"type", "object"},
          {"properties",
           {{"name", {{"type", "string"}, {"const", t.name}}}, {args_field, t.parameters}}},
          {"required", {"name", args_field}},
          {"additionalProperties", false}};
}

ojson any_call_schema(const std::vector<const ToolDef*>& fns, const char* args_field) {
  if (fns.size() == 1) return call_object_schema(*fns[0], args_field);
  ojson any = ojson::array();
  for (const ToolDef* t : fns) any.push_back(call_object_schema(*t, args_field));
  return {{"anyOf", std::move(any)}};
}

}  // namespace

ToolCallGrammarSpec tool_call_grammar_spec(ToolSyntax syntax, const ToolRequest& tools) {
  if (!tools.active()) throw Error("tool_call_grammar_spec: the request calls no tools");
  const std::vector<const ToolDef*> fns = tools.callable();
  if (fns.empty()) throw Error("tool_call_grammar_spec: no callable function");
  const bool lazy = tools.choice == ToolChoice::AUTO;
  ToolCallGrammarSpec g;
  g.repeat = tools.parallel && tools.choice != ToolChoice::NAMED;
  switch (syntax) {
    case ToolSyntax::HERMES:
      g.shapes.push_back({"<tool_call>\n", any_call_schema(fns, "arguments"), "\n</tool_call>"});
      g.separator = "\n"s;
      if (lazy) g.triggers = {"<tool_call>"};
      g.special_literals = {"<tool_call>", "</tool_call>"};
      break;
    case ToolSyntax::LLAMA3_JSON:
      g.shapes.push_back({"", any_call_schema(fns, "parameters"), ""});
      g.repeat = false;  // the Llama 3.x templates render one call per assistant turn
      if (lazy) {
        g.triggers = {"{\"name\""};
        g.trigger_at_start = true;
      }
      break;
    case ToolSyntax::MISTRAL:
      g.list_begin = "[TOOL_CALLS]["s;
      g.shapes.push_back({"", any_call_schema(fns, "arguments"), ""});
      g.separator = ", "s;
      g.list_end = "]"s;
      if (lazy) g.triggers = {"[TOOL_CALLS]"};
      g.special_literals = {"[TOOL_CALLS]"};
      break;
    case ToolSyntax::MISTRAL_ARGS:
      for (const ToolDef* t : fns)
        g.shapes.push_back({"[TOOL_CALLS]" + t->name + "[ARGS]", t->parameters, ""});
      if (lazy) g.triggers = {"[TOOL_CALLS]"};
      g.special_literals = {"[TOOL_CALLS]", "[ARGS]"};
      break;
    case ToolSyntax::GENERIC:
      g.shapes.push_back({"", any_call_schema(fns, "arguments"), ""});
      if (g.repeat) {
        g.list_begin = "["s;
        g.separator = ", "s;
        g.list_end = "]"s;
      }
      if (lazy) {
        g.triggers = {g.repeat ? "[{\"name\"" : "{\"name\""};
        g.trigger_at_start = true;
      }
      break;
  }
  return g;
}

}  // namespace tessera
