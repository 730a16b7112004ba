// Chat / completion request parsing: output constraints, tools, messages with tool calls,
// template inputs. Every rejection is a 400 naming the field at fault.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "server/api_error.h"
#include "server/openai_request.h"
#include "server/tool_format.h"

namespace tessera {
namespace {

using ojson = nlohmann::ordered_json;

constexpr int kVocab = 1000;

ojson chat(ojson extra = ojson::object()) {
  ojson body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

ojson weather_tool(const std::string& name = "get_weather") {
  return {{"type", "function"},
          {"function",
           {{"name", name},
            {"description", "Weather"},
            {"parameters",
             {{"type", "object"},
              {"properties", {{"city", {{"type", "string"}}}}},
              {"required", {"city"}}}}}}};
}

// The 400 parse_chat_request raises for `body`, naming `param`.
void expect_bad(const ojson& body, const std::string& param, const std::string& says = "",
                bool completions = false) {
  try {
    if (completions)
      parse_completion_request(body, kVocab);
    else
      parse_chat_request(body, kVocab);
    ADD_FAILURE() << "accepted: " << body.dump();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400) << body.dump();
    EXPECT_EQ(e.param, param) << e.what();
    if (!says.empty()) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  }
}

// ---- the body

TEST(RequestBody, KeyOrderKeptDepthBounded) {
  EXPECT_EQ(parse_request_body(R"({"z": 1, "a": {"y": 2, "b": 3}})").dump(),
            R"({"z":1,"a":{"y":2,"b":3}})");
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_NO_THROW(parse_request_body(nested(kMaxJsonDepth)));
  for (const std::string& bad :
       {nested(kMaxJsonDepth + 1), nested(1000000), std::string("{\"a\":"), std::string("")}) {
    try {
      parse_request_body(bad);
      ADD_FAILURE() << "accepted " << bad.size() << " bytes";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
    }
  }
}

// ---- output constraints

TEST(RequestConstraint, NoneByDefaultAndForText) {
  EXPECT_EQ(parse_chat_request(chat(), kVocab).constraint.kind, ConstraintKind::NONE);
  const auto r = parse_chat_request(chat({{"response_format", {{"type", "text"}}}}), kVocab);
  EXPECT_EQ(r.constraint.kind, ConstraintKind::NONE);
}

TEST(RequestConstraint, ResponseFormat) {
  auto r = parse_chat_request(chat({{"response_format", {{"type", "json_object"}}}}), kVocab);
  EXPECT_EQ(r.constraint.kind, ConstraintKind::JSON_OBJECT);
  EXPECT_EQ(r.constraint.field, "response_format");

  const ojson schema = {
      {"type", "object"},
      {"properties", {{"z", {{"type", "integer"}}}, {"a", {{"type", "string"}}}}}};
  r = parse_chat_request(
      chat({{"response_format",
             {{"type", "json_schema"},
              {"json_schema", {{"name", "thing"}, {"schema", schema}, {"strict", true}}}}}}),
      kVocab);
  EXPECT_EQ(r.constraint.kind, ConstraintKind::JSON_SCHEMA);
  EXPECT_EQ(r.constraint.schema, schema);
  EXPECT_EQ(r.constraint.schema.dump(), schema.dump());  // the client's key order
  EXPECT_EQ(r.constraint.schema_name, "thing");
  EXPECT_TRUE(r.constraint.strict);

  // llama-server's forms: a schema beside json_object, or directly under json_schema.
  r = parse_chat_request(chat({{"response_format", {{"type", "json_object"}, {"schema", schema}}}}),
                         kVocab);
  EXPECT_EQ(r.constraint.kind, ConstraintKind::JSON_SCHEMA);
  r = parse_chat_request(chat({{"response_format", {{"type", "json_schema"}, {"schema", schema}}}}),
                         kVocab);
  EXPECT_EQ(r.constraint.kind, ConstraintKind::JSON_SCHEMA);

  // Completions take it too.
  const ojson comp = {{"prompt", "x"}, {"response_format", {{"type", "json_object"}}}};
  EXPECT_EQ(parse_completion_request(comp, kVocab).constraint.kind, ConstraintKind::JSON_OBJECT);
}

TEST(RequestConstraint, ResponseFormatErrors) {
  expect_bad(chat({{"response_format", "json"}}), "response_format");
  expect_bad(chat({{"response_format", ojson::object()}}), "response_format.type");
  expect_bad(chat({{"response_format", {{"type", "structural_tag"}}}}), "response_format.type",
             "not supported");
  expect_bad(chat({{"response_format", {{"type", "json_schema"}}}}), "response_format.json_schema");
  expect_bad(chat({{"response_format",
                    {{"type", "json_schema"}, {"json_schema", {{"schema", ojson::object()}}}}}}),
             "response_format.json_schema.name");
  expect_bad(
      chat({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}}}}),
      "response_format.json_schema.schema");
  expect_bad(
      chat({{"response_format",
             {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", "{}"}}}}}}),
      "response_format.json_schema.schema");
  expect_bad(
      chat({{"response_format",
             {{"type", "json_schema"},
              {"json_schema", {{"name", "x"}, {"schema", ojson::object()}, {"strict", "yes"}}}}}}),
      "response_format.json_schema.strict");
}

TEST(RequestConstraint, VllmAndLlamaServerFields) {
  auto kind = [](const ojson& extra) { return parse_chat_request(chat(extra), kVocab).constraint; };
  EXPECT_EQ(kind({{"guided_json", {{"type", "object"}}}}).kind, ConstraintKind::JSON_SCHEMA);
  EXPECT_EQ(kind({{"guided_json", "{\"type\": \"object\"}"}}).schema, ojson({{"type", "object"}}));
  EXPECT_EQ(kind({{"guided_regex", "[a-z]+"}}).pattern, "[a-z]+");
  EXPECT_EQ(kind({{"guided_choice", {"yes", "no"}}}).choices,
            (std::vector<std::string>{"yes", "no"}));
  EXPECT_EQ(kind({{"guided_grammar", "root ::= \"a\""}}).grammar, "root ::= \"a\"");
  EXPECT_EQ(kind({{"grammar", "root ::= \"a\""}}).field, "grammar");
  EXPECT_EQ(kind({{"grammar", ""}}).kind, ConstraintKind::NONE);  // llama-server's default
  EXPECT_EQ(kind({{"json_schema", {{"type", "array"}}}}).kind, ConstraintKind::JSON_SCHEMA);
  EXPECT_EQ(kind({{"structured_outputs", {{"regex", "x"}}}}).kind, ConstraintKind::REGEX);
  EXPECT_EQ(kind({{"structured_outputs", {{"json_object", true}}}}).kind,
            ConstraintKind::JSON_OBJECT);
  EXPECT_EQ(kind({{"structured_outputs", {{"choice", {"a"}}}}}).kind, ConstraintKind::CHOICE);
  EXPECT_EQ(kind({{"guided_regex", nullptr}}).kind, ConstraintKind::NONE);
}

TEST(RequestConstraint, BadAndConflictingFields) {
  expect_bad(chat({{"guided_json", "{not json"}}), "guided_json", "not valid JSON");
  expect_bad(chat({{"guided_json", "[1]"}}), "guided_json");
  expect_bad(chat({{"guided_json", 3}}), "guided_json");
  expect_bad(chat({{"guided_regex", ""}}), "guided_regex");
  expect_bad(chat({{"guided_regex", 5}}), "guided_regex");
  expect_bad(chat({{"guided_choice", ojson::array()}}), "guided_choice");
  expect_bad(chat({{"guided_choice", {"a", 1}}}), "guided_choice");
  expect_bad(chat({{"grammar", 1}}), "grammar");
  expect_bad(chat({{"json_schema", "{}"}}), "json_schema");
  expect_bad(chat({{"guided_whitespace_pattern", " "}}), "guided_whitespace_pattern");
  expect_bad(chat({{"structured_outputs", {{"regex", "a"}, {"choice", {"b"}}}}}),
             "structured_outputs");
  expect_bad(chat({{"structured_outputs", ojson::object()}}), "structured_outputs");
  expect_bad(chat({{"structured_outputs", {{"structural_tag", "x"}}}}),
             "structured_outputs.structural_tag");
  expect_bad(chat({{"response_format", {{"type", "json_object"}}}, {"guided_regex", "a"}}),
             "guided_regex", "conflicts with 'response_format'");
  expect_bad(chat({{"guided_json", ojson::object()}, {"guided_choice", {"a"}}}), "guided_choice",
             "conflicts");
  expect_bad(chat({{"json_schema", ojson::object()}, {"grammar", "root ::= \"a\""}}), "json_schema",
             "conflicts with 'grammar'");
}

// ---- tools

TEST(RequestTools, DefaultsAndChoices) {
  auto r = parse_chat_request(chat(), kVocab);
  EXPECT_EQ(r.tools.choice, ToolChoice::NONE);
  EXPECT_FALSE(r.tools.active());
  EXPECT_TRUE(r.tools.raw.is_null());

  r = parse_chat_request(chat({{"tools", {weather_tool(), weather_tool("get_time")}}}), kVocab);
  EXPECT_EQ(r.tools.choice, ToolChoice::AUTO);
  EXPECT_TRUE(r.tools.active());
  EXPECT_TRUE(r.tools.parallel);
  ASSERT_EQ(r.tools.tools.size(), 2u);
  EXPECT_EQ(r.tools.tools[0].name, "get_weather");
  EXPECT_EQ(r.tools.tools[0].description, "Weather");
  EXPECT_EQ(r.tools.tools[0].parameters["required"], ojson({"city"}));
  EXPECT_EQ(r.tools.raw.dump(), ojson({weather_tool(), weather_tool("get_time")}).dump());
  EXPECT_EQ(r.tools.callable().size(), 2u);

  r = parse_chat_request(chat({{"tools", {weather_tool()}}, {"tool_choice", "none"}}), kVocab);
  EXPECT_EQ(r.tools.choice, ToolChoice::NONE);
  EXPECT_FALSE(r.tools.active());
  EXPECT_FALSE(r.tools.raw.is_null());  // the template still sees them, as in vLLM

  r = parse_chat_request(
      chat({{"tools", {weather_tool(), weather_tool("get_time")}},
            {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}},
            {"parallel_tool_calls", false}}),
      kVocab);
  EXPECT_EQ(r.tools.choice, ToolChoice::NAMED);
  EXPECT_EQ(r.tools.named, "get_time");
  EXPECT_FALSE(r.tools.parallel);
  ASSERT_EQ(r.tools.callable().size(), 1u);
  EXPECT_EQ(r.tools.callable()[0]->name, "get_time");

  r = parse_chat_request(chat({{"tools", {weather_tool()}}, {"tool_choice", "required"}}), kVocab);
  EXPECT_EQ(r.tools.choice, ToolChoice::REQUIRED);

  // A function without parameters takes none.
  r = parse_chat_request(
      chat({{"tools", {{{"type", "function"}, {"function", {{"name", "ping"}}}}}}}), kVocab);
  EXPECT_EQ(r.tools.tools[0].parameters, ojson({{"type", "object"},
                                                {"properties", ojson::object()},
                                                {"additionalProperties", false}}));
}

TEST(RequestTools, Errors) {
  expect_bad(chat({{"tools", weather_tool()}}), "tools");
  expect_bad(chat({{"tools", {{{"type", "function"}, {"function", {{"description", "x"}}}}}}}),
             "tools[0].function.name", "name");
  expect_bad(chat({{"tools", {{{"type", "function"}, {"function", {{"name", ""}}}}}}}),
             "tools[0].function.name");
  expect_bad(chat({{"tools", {{{"type", "function"}, {"function", {{"name", 3}}}}}}}),
             "tools[0].function.name");
  expect_bad(chat({{"tools", {weather_tool(), weather_tool()}}}), "tools[1].function.name",
             "more than once");
  expect_bad(chat({{"tools", {{{"function", {{"name", "f"}}}}}}}), "tools[0].type");
  expect_bad(chat({{"tools", {{{"type", "code_interpreter"}}}}}), "tools[0].type", "not supported");
  expect_bad(chat({{"tools", {{{"type", "function"}}}}}), "tools[0].function");
  expect_bad(chat({{"tools",
                    {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", "x"}}}}}}}),
             "tools[0].function.parameters");
  expect_bad(chat({{"tools", {weather_tool()}}, {"tool_choice", "always"}}), "tool_choice");
  expect_bad(chat({{"tools", {weather_tool()}}, {"tool_choice", 1}}), "tool_choice");
  expect_bad(chat({{"tools", {weather_tool()}},
                   {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}}),
             "tool_choice", "'nope', which is not in 'tools'");
  expect_bad(chat({{"tools", {weather_tool()}}, {"tool_choice", {{"type", "function"}}}}),
             "tool_choice.function");
  expect_bad(chat({{"tool_choice", "required"}}), "tool_choice", "no 'tools'");
  expect_bad(chat({{"tools", {weather_tool()}}, {"parallel_tool_calls", "no"}}),
             "parallel_tool_calls");
  expect_bad(chat({{"functions", {{{"name", "f"}}}}}), "functions", "use 'tools'");
  // A forced call is the whole output: no other constraint beside it.
  expect_bad(chat({{"tools", {weather_tool()}},
                   {"tool_choice", "required"},
                   {"response_format", {{"type", "json_object"}}}}),
             "response_format", "tool_choice 'required'");
  // Tools belong to chat.
  expect_bad({{"prompt", "x"}, {"tools", {weather_tool()}}}, "tools", "chat", true);
}

TEST(RequestTools, AutoMayComeWithAConstraint) {
  const auto r = parse_chat_request(
      chat({{"tools", {weather_tool()}}, {"response_format", {{"type", "json_object"}}}}), kVocab);
  EXPECT_EQ(r.tools.choice, ToolChoice::AUTO);
  EXPECT_EQ(r.constraint.kind, ConstraintKind::JSON_OBJECT);
}

// ---- messages

TEST(RequestMessages, ToolCallsAndResultsForTheTemplate) {
  const ojson body = {
      {"messages",
       {{{"role", "user"}, {"content", "Weather?"}},
        {{"role", "assistant"},
         {"content", nullptr},
         {"tool_calls",
          {{{"id", "call_1"},
            {"type", "function"},
            {"function", {{"name", "get_weather"}, {"arguments", "{\"z\": 1, \"a\": [true]}"}}}}}}},
        {{"role", "tool"},
         {"tool_call_id", "call_1"},
         {"content", {{{"type", "text"}, {"text", "21 C"}}}}},
        {{"role", "assistant"},
         {"content", "Warm."},
         {"tool_calls", nullptr},
         {"reasoning", "hm"}}}}};
  const auto r = parse_chat_request(body, kVocab);
  const ojson& m = r.messages;
  EXPECT_EQ(m[1]["content"], "");
  const ojson& args = m[1]["tool_calls"][0]["function"]["arguments"];
  EXPECT_TRUE(args.is_object());
  EXPECT_EQ(args.dump(), "{\"z\":1,\"a\":[true]}");  // the model's key order
  EXPECT_EQ(m[1]["tool_calls"][0]["id"], "call_1");
  EXPECT_EQ(m[2]["content"], "21 C");
  EXPECT_EQ(m[2]["tool_call_id"], "call_1");
  EXPECT_FALSE(m[3].contains("tool_calls"));
  EXPECT_EQ(m[3]["reasoning_content"], "hm");
  EXPECT_EQ(m[3]["thinking"], "hm");
}

TEST(RequestMessages, Errors) {
  auto with = [](ojson msg) {
    return ojson{{"messages", {{{"role", "user"}, {"content", "x"}}, msg}}};
  };
  const ojson call = {
      {"id", "c"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{"}}}};
  expect_bad(with({{"role", "assistant"}, {"tool_calls", {call}}}),
             "messages[1].tool_calls[0].function.arguments", "not valid JSON");
  ojson c2 = call;
  c2["function"]["arguments"] = "[1]";
  expect_bad(with({{"role", "assistant"}, {"tool_calls", {c2}}}),
             "messages[1].tool_calls[0].function.arguments", "object");
  c2["function"].erase("arguments");
  expect_bad(with({{"role", "assistant"}, {"tool_calls", {c2}}}),
             "messages[1].tool_calls[0].function.arguments");
  c2 = call;
  c2["function"]["name"] = "";
  expect_bad(with({{"role", "assistant"}, {"tool_calls", {c2}}}),
             "messages[1].tool_calls[0].function.name");
  c2 = call;
  c2["type"] = "custom";
  expect_bad(with({{"role", "assistant"}, {"tool_calls", {c2}}}), "messages[1].tool_calls[0].type");
  expect_bad(with({{"role", "assistant"}, {"tool_calls", "f()"}}), "messages[1].tool_calls");
  expect_bad(with({{"role", "user"}, {"content", "x"}, {"tool_calls", {call}}}),
             "messages[1].tool_calls");
  expect_bad(with({{"role", "tool"}, {"content", "x"}, {"tool_call_id", 5}}),
             "messages[1].tool_call_id");
  expect_bad(with({{"role", "robot"}, {"content", "x"}}), "messages[1].role");
}

// ---- template inputs

TEST(RequestTemplateFields, KwargsDocumentsGenerationPrompt) {
  auto r = parse_chat_request(chat({{"chat_template_kwargs", {{"enable_thinking", false}}},
                                    {"add_generation_prompt", false},
                                    {"documents", {{{"title", "t"}, {"text", "x"}}}}}),
                              kVocab);
  EXPECT_EQ(r.template_kwargs, ojson({{"enable_thinking", false}}));
  EXPECT_FALSE(r.add_generation_prompt);
  EXPECT_EQ(r.documents.size(), 1u);
  EXPECT_TRUE(parse_chat_request(chat(), kVocab).add_generation_prompt);

  expect_bad(chat({{"chat_template_kwargs", "enable_thinking"}}), "chat_template_kwargs");
  expect_bad(chat({{"chat_template_kwargs", {{"tools", ojson::array()}}}}), "chat_template_kwargs",
             "'tools'");
  expect_bad(chat({{"add_generation_prompt", 1}}), "add_generation_prompt");
  expect_bad(chat({{"continue_final_message", true}}), "continue_final_message");
  expect_bad(chat({{"chat_template", "{{ x }}"}}), "chat_template");
  expect_bad(chat({{"documents", {"text"}}}), "documents");
}

// ---- the grammar description of tool calls

ToolRequest tool_request(ToolChoice choice, bool parallel = true) {
  ToolRequest t;
  for (const char* name : {"get_weather", "get_time"}) {
    ToolDef d;
    d.name = name;
    d.parameters = {{"type", "object"}, {"properties", {{"x", {{"type", "string"}}}}}};
    t.tools.push_back(d);
  }
  t.choice = choice;
  t.named = "get_time";
  t.parallel = parallel;
  return t;
}

TEST(ToolGrammarSpec, HermesRequired) {
  const ToolCallGrammarSpec g =
      tool_call_grammar_spec(ToolSyntax::HERMES, tool_request(ToolChoice::REQUIRED));
  EXPECT_TRUE(g.triggers.empty());
  ASSERT_EQ(g.shapes.size(), 1u);
  EXPECT_EQ(g.shapes[0].begin, "<tool_call>\n");
  EXPECT_EQ(g.shapes[0].end, "\n</tool_call>");
  const ojson& any = g.shapes[0].schema["anyOf"];
  ASSERT_EQ(any.size(), 2u);
  EXPECT_EQ(any[0]["properties"]["name"]["const"], "get_weather");
  EXPECT_EQ(any[1]["properties"]["arguments"], tool_request(ToolChoice::AUTO).tools[1].parameters);
  EXPECT_EQ(any[0]["properties"].begin().key(), "name");  // name first: calls stream in order
  EXPECT_EQ(any[0]["required"], ojson({"name", "arguments"}));
  EXPECT_EQ(any[0]["additionalProperties"], false);
  EXPECT_TRUE(g.repeat);
  EXPECT_EQ(g.separator, "\n");
}

TEST(ToolGrammarSpec, NamedAutoAndFamilies) {
  ToolCallGrammarSpec g =
      tool_call_grammar_spec(ToolSyntax::HERMES, tool_request(ToolChoice::NAMED));
  EXPECT_FALSE(g.repeat);
  EXPECT_EQ(g.shapes[0].schema["properties"]["name"]["const"], "get_time");  // no anyOf

  g = tool_call_grammar_spec(ToolSyntax::HERMES, tool_request(ToolChoice::AUTO, false));
  EXPECT_EQ(g.triggers, std::vector<std::string>{"<tool_call>"});
  EXPECT_FALSE(g.repeat);

  g = tool_call_grammar_spec(ToolSyntax::LLAMA3_JSON, tool_request(ToolChoice::AUTO));
  EXPECT_EQ(g.triggers, std::vector<std::string>{"{\"name\""});
  EXPECT_TRUE(g.trigger_at_start);
  EXPECT_FALSE(g.repeat);  // one call per turn in Llama 3.x templates
  EXPECT_TRUE(g.shapes[0].schema["anyOf"][0]["properties"].contains("parameters"));

  g = tool_call_grammar_spec(ToolSyntax::MISTRAL, tool_request(ToolChoice::REQUIRED));
  EXPECT_EQ(g.list_begin, "[TOOL_CALLS][");
  EXPECT_EQ(g.separator, ", ");
  EXPECT_EQ(g.list_end, "]");

  g = tool_call_grammar_spec(ToolSyntax::MISTRAL_ARGS, tool_request(ToolChoice::REQUIRED));
  ASSERT_EQ(g.shapes.size(), 2u);
  EXPECT_EQ(g.shapes[1].begin, "[TOOL_CALLS]get_time[ARGS]");
  EXPECT_EQ(g.shapes[1].schema, tool_request(ToolChoice::AUTO).tools[1].parameters);

  g = tool_call_grammar_spec(ToolSyntax::GENERIC, tool_request(ToolChoice::REQUIRED));
  EXPECT_EQ(g.list_begin, "[");
  g = tool_call_grammar_spec(ToolSyntax::GENERIC, tool_request(ToolChoice::REQUIRED, false));
  EXPECT_EQ(g.list_begin, "");

  EXPECT_THROW(tool_call_grammar_spec(ToolSyntax::HERMES, tool_request(ToolChoice::NONE)), Error);
}

}  // namespace
}  // namespace tessera
