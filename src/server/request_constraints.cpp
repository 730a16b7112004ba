#include "server/request_constraints.h"

#include <set>
#include <string>

#include "server/request_fields.h"

namespace tessera {

using namespace request_fields;

namespace {

// A JSON Schema given as an object, or (guided_json, structured_outputs.json) as its text.
json schema_value(const json& v, const std::string& param, bool text_allowed) {
  if (v.is_object()) return v;
  if (v.is_string() && text_allowed) {
    json parsed;
    try {
      parsed = json::parse(v.get<std::string>());
    } catch (const json::parse_error& e) {
      bad(param, "'" + param + "' is not valid JSON: " + e.what());
    }
    if (!parsed.is_object()) bad(param, "'" + param + "' must be a JSON Schema object");
    return parsed;
  }
  bad(param, std::string("'") + param + "' must be a JSON Schema object" +
                 (text_allowed ? " (or its JSON text)" : ""));
}

std::string non_empty_string(const json& v, const std::string& param) {
  if (!v.is_string()) bad(param, "'" + param + "' must be a string");
  if (v.get_ref<const std::string&>().empty()) bad(param, "'" + param + "' must not be empty");
  return v.get<std::string>();
}

std::vector<std::string> choice_list(const json& v, const std::string& param) {
  if (!v.is_array() || v.empty())
    bad(param, "'" + param + "' must be a non-empty array of strings");
  std::vector<std::string> out;
  for (const json& c : v) {
    if (!c.is_string()) bad(param, "'" + param + "' must be a non-empty array of strings");
    out.push_back(c.get<std::string>());
  }
  return out;
}

OutputConstraint from_response_format(const json& rf) {
  const std::string p = "response_format";
  if (!rf.is_object()) bad(p, "'response_format' must be an object");
  const std::string* type = get_string(rf, "type", p + ".type");
  if (!type) bad(p + ".type", "'response_format.type' is required");
  OutputConstraint c;
  c.field = p;
  if (*type == "text") return c;
  if (*type == "json_object") {
    // llama-server accepts a schema beside json_object.
    if (const json* s = field(rf, "schema")) {
      c.kind = ConstraintKind::JSON_SCHEMA;
      c.schema = schema_value(*s, p + ".schema", false);
    } else {
      c.kind = ConstraintKind::JSON_OBJECT;
    }
    return c;
  }
  if (*type == "json_schema") {
    c.kind = ConstraintKind::JSON_SCHEMA;
    const json* js = field(rf, "json_schema");
    if (!js) {
      // llama-server: {"type": "json_schema", "schema": {...}}
      const json* s = field(rf, "schema");
      if (!s) bad(p + ".json_schema", "'response_format.json_schema' is required");
      c.schema = schema_value(*s, p + ".schema", false);
      return c;
    }
    const std::string q = p + ".json_schema";
    if (!js->is_object()) bad(q, "'" + q + "' must be an object");
    const std::string* name = get_string(*js, "name", q + ".name");
    if (!name) bad(q + ".name", "'" + q + ".name' is required");
    c.schema_name = *name;
    const json* s = field(*js, "schema");
    if (!s) bad(q + ".schema", "'" + q + ".schema' is required");
    c.schema = schema_value(*s, q + ".schema", false);
    c.strict = get_bool(*js, "strict", false, q + ".strict");
    get_string(*js, "description", q + ".description");  // type check only
    return c;
  }
  bad(p + ".type", "response_format type '" + *type +
                       "' is not supported (expected text, json_object or json_schema)");
}

// vLLM's structured_outputs: {"json" | "regex" | "choice" | "grammar" | "json_object"}.
OutputConstraint from_structured_outputs(const json& so) {
  const std::string p = "structured_outputs";
  if (!so.is_object()) bad(p, "'structured_outputs' must be an object");
  for (const char* k : {"structural_tag", "whitespace_pattern"})
    if (field(so, k)) bad(p + "." + k, "'" + p + "." + k + "' is not supported");
  for (const char* k : {"disable_any_whitespace", "disable_additional_properties"})
    if (get_bool(so, k, false, p + "." + k))
      bad(p + "." + k, "'" + p + "." + k + "' is not supported");
  OutputConstraint c;
  c.field = p;
  int n = 0;
  if (const json* v = field(so, "json")) {
    c.kind = ConstraintKind::JSON_SCHEMA;
    c.schema = schema_value(*v, p + ".json", true);
    ++n;
  }
  if (const json* v = field(so, "regex")) {
    c.kind = ConstraintKind::REGEX;
    c.pattern = non_empty_string(*v, p + ".regex");
    ++n;
  }
  if (const json* v = field(so, "choice")) {
    c.kind = ConstraintKind::CHOICE;
    c.choices = choice_list(*v, p + ".choice");
    ++n;
  }
  if (const json* v = field(so, "grammar")) {
    c.kind = ConstraintKind::GRAMMAR;
    c.grammar = non_empty_string(*v, p + ".grammar");
    ++n;
  }
  if (get_bool(so, "json_object", false, p + ".json_object")) {
    c.kind = ConstraintKind::JSON_OBJECT;
    ++n;
  }
  if (n > 1)
    bad(p, "'structured_outputs' must give one of json, regex, choice, grammar, json_object");
  if (n == 0)
    bad(p,
        "'structured_outputs' gives no constraint (json, regex, choice, grammar or "
        "json_object)");
  return c;
}

}  // namespace

OutputConstraint parse_output_constraint(const json& body) {
  std::vector<OutputConstraint> found;
  if (const json* rf = field(body, "response_format")) {
    OutputConstraint c = from_response_format(*rf);
    if (c.kind != ConstraintKind::NONE) found.push_back(std::move(c));
  }
  auto add = [&](ConstraintKind kind, const char* name) -> OutputConstraint& {
    OutputConstraint& c = found.emplace_back();
    c.kind = kind;
    c.field = name;
    return c;
  };
  if (const json* v = field(body, "guided_json"))
    add(ConstraintKind::JSON_SCHEMA, "guided_json").schema = schema_value(*v, "guided_json", true);
  if (const json* v = field(body, "guided_regex"))
    add(ConstraintKind::REGEX, "guided_regex").pattern = non_empty_string(*v, "guided_regex");
  if (const json* v = field(body, "guided_choice"))
    add(ConstraintKind::CHOICE, "guided_choice").choices = choice_list(*v, "guided_choice");
  // Grammars: an empty string means none (llama-server's default for `grammar`).
  for (const char* name : {"guided_grammar", "grammar"}) {
    const std::string* g = get_string(body, name, name);
    if (g && !g->empty()) add(ConstraintKind::GRAMMAR, name).grammar = *g;
  }
  if (const json* v = field(body, "json_schema"))
    add(ConstraintKind::JSON_SCHEMA, "json_schema").schema = schema_value(*v, "json_schema", false);
  if (const json* v = field(body, "structured_outputs"))
    found.push_back(from_structured_outputs(*v));
  if (field(body, "guided_whitespace_pattern"))
    bad("guided_whitespace_pattern", "'guided_whitespace_pattern' is not supported");

  if (found.empty()) return {};
  if (found.size() > 1)
    bad(found[1].field, "'" + found[1].field + "' conflicts with '" + found[0].field +
                            "': a request may constrain its output one way only");
  return std::move(found[0]);
}

ToolRequest parse_tool_request(const json& body) {
  for (const char* legacy : {"functions", "function_call"})
    if (field(body, legacy))
      bad(legacy, std::string("'") + legacy +
                      "' (deprecated by OpenAI) is not supported; use 'tools' and 'tool_choice'");
  ToolRequest r;
  std::set<std::string> names;
  if (const json* tools = field(body, "tools")) {
    if (!tools->is_array()) bad("tools", "'tools' must be an array");
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string p = "tools[" + std::to_string(i) + "]";
      if (!t.is_object()) bad(p, "'" + p + "' must be an object");
      const std::string* type = get_string(t, "type", p + ".type");
      if (!type) bad(p + ".type", "'" + p + ".type' is required (\"function\")");
      if (*type != "function")
        bad(p + ".type", "tool type '" + *type + "' is not supported (expected \"function\")");
      const json* fn = field(t, "function");
      if (!fn || !fn->is_object()) bad(p + ".function", "'" + p + ".function' must be an object");
      const std::string q = p + ".function";
      ToolDef d;
      const std::string* name = get_string(*fn, "name", q + ".name");
      if (!name || name->empty()) bad(q + ".name", "every tool needs a non-empty 'name'");
      d.name = *name;
      if (!names.insert(d.name).second)
        bad(q + ".name", "tool name '" + d.name + "' is given more than once");
      if (const std::string* desc = get_string(*fn, "description", q + ".description"))
        d.description = *desc;
      if (const json* params = field(*fn, "parameters")) {
        if (!params->is_object())
          bad(q + ".parameters", "'" + q + ".parameters' must be a JSON Schema object");
        d.parameters = *params;
      } else {
        d.parameters = {
            {"type", "object"}, {"properties", json::object()}, {"additionalProperties", false}};
      }
      d.strict = get_bool(*fn, "strict", false, q + ".strict");
      r.tools.push_back(std::move(d));
    }
    r.raw = *tools;
  }

  r.choice = r.tools.empty() ? ToolChoice::NONE : ToolChoice::AUTO;
  if (const json* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      const std::string s = tc->get<std::string>();
      if (s == "none")
        r.choice = ToolChoice::NONE;
      else if (s == "auto")
        r.choice = ToolChoice::AUTO;
      else if (s == "required")
        r.choice = ToolChoice::REQUIRED;
      else
        bad("tool_choice", "tool_choice '" + s +
                               "' is not one of none, auto, required or "
                               "{\"type\": \"function\", \"function\": {\"name\": ...}}");
    } else if (tc->is_object()) {
      const std::string* type = get_string(*tc, "type", "tool_choice.type");
      if (!type || *type != "function")
        bad("tool_choice.type", "'tool_choice.type' must be \"function\"");
      const json* fn = field(*tc, "function");
      if (!fn || !fn->is_object())
        bad("tool_choice.function", "'tool_choice.function' must be an object with a 'name'");
      const std::string* name = get_string(*fn, "name", "tool_choice.function.name");
      if (!name || name->empty())
        bad("tool_choice.function.name", "'tool_choice.function.name' is required");
      r.choice = ToolChoice::NAMED;
      r.named = *name;
    } else {
      bad("tool_choice", "'tool_choice' must be a string or an object");
    }
  }
  if ((r.choice == ToolChoice::REQUIRED || r.choice == ToolChoice::NAMED) && r.tools.empty())
    bad("tool_choice", "tool_choice requires a call, but the request has no 'tools'");
  if (r.choice == ToolChoice::NAMED && !names.count(r.named))
    bad("tool_choice", "tool_choice names function '" + r.named + "', which is not in 'tools'");
  r.parallel = get_bool(body, "parallel_tool_calls", true);
  return r;
}

void check_tools_vs_constraint(const ToolRequest& tools, const OutputConstraint& c) {
  if (c.kind == ConstraintKind::NONE) return;
  if (tools.choice == ToolChoice::REQUIRED || tools.choice == ToolChoice::NAMED)
    bad(c.field,
        "'" + c.field + "' conflicts with tool_choice " +
            (tools.choice == ToolChoice::REQUIRED ? "'required'" : "naming '" + tools.named + "'") +
            ": a forced tool call is the whole output");
}

}  // namespace tessera
