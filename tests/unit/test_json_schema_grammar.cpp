// Front ends to the grammar: JSON Schema (integer / number ranges checked exhaustively
// against the bounds, objects, arrays, refs, formats), regex, choice, and the tool-call
// languages (forced and lazy) of the server's grammar compiler.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "server/api_error.h"
#include "server/chat_output.h"
#include "server/grammar_compiler.h"
#include "structured/json_schema.h"
#include "structured/regex.h"
#include "structured/token_mask.h"

using namespace tessera;
using namespace tessera::structured;
using ojson = nlohmann::ordered_json;

namespace {

std::shared_ptr<CompiledGrammar> compile(const std::string& gbnf) {
  auto vocab = std::make_shared<TokenVocab>(std::vector<std::string>{"x"}, std::vector<int32_t>{});
  return std::make_shared<CompiledGrammar>(parse_gbnf(gbnf), vocab);
}

bool full(const std::shared_ptr<CompiledGrammar>& g, const std::string& text) {
  GrammarMatcher m(g);
  return m.accept_bytes(text) && m.accepting();
}

bool schema_accepts(const ojson& schema, const std::string& text) {
  return full(compile(json_schema_to_gbnf(schema)), text);
}

std::string schema_error(const ojson& schema) {
  try {
    parse_gbnf(json_schema_to_gbnf(schema));
  } catch (const GrammarError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(JsonSchemaGrammar, IntegerRangesExactly) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> pick(-1200, 1200);
  for (int trial = 0; trial < 40; ++trial) {
    int lo = pick(rng), hi = pick(rng);
    if (lo > hi) std::swap(lo, hi);
    ojson s = {{"type", "integer"}};
    const int mode = trial % 4;  // both bounds, min only, max only, exclusive both
    if (mode != 2) s[mode == 3 ? "exclusiveMinimum" : "minimum"] = lo;
    if (mode != 1) s[mode == 3 ? "exclusiveMaximum" : "maximum"] = hi;
    auto g = compile(json_schema_to_gbnf(s));
    for (int v = -1500; v <= 1500; ++v) {
      bool in = true;
      if (mode != 2) in &= mode == 3 ? v > lo : v >= lo;
      if (mode != 1) in &= mode == 3 ? v < hi : v <= hi;
      ASSERT_EQ(full(g, std::to_string(v)), in) << s.dump() << " value " << v;
    }
    EXPECT_FALSE(full(g, "-0"));
    EXPECT_FALSE(full(g, "007"));
  }
}

TEST(JsonSchemaGrammar, NumberRangesAreSound) {
  // Each schema with a value inside its range that the grammar must produce.
  const std::vector<std::pair<ojson, std::string>> cases = {
      {{{"type", "number"}, {"minimum", 0.5}, {"maximum", 99.99}}, "42.5"},
      {{{"type", "number"}, {"exclusiveMinimum", 0}, {"exclusiveMaximum", 1}}, "0.5"},
      {{{"type", "number"}, {"minimum", -3}, {"exclusiveMaximum", 0}}, "-0.25"},
      {{{"type", "number"}, {"maximum", -2.5}}, "-70.125"},
      {{{"type", "number"}, {"minimum", 7}}, "70"},
  };
  std::mt19937 rng(9);
  for (const auto& [s, inside] : cases) {
    auto g = compile(json_schema_to_gbnf(s));
    const double lo = s.contains("minimum")            ? s["minimum"].get<double>()
                      : s.contains("exclusiveMinimum") ? s["exclusiveMinimum"].get<double>()
                                                       : -1e300;
    const double hi = s.contains("maximum")            ? s["maximum"].get<double>()
                      : s.contains("exclusiveMaximum") ? s["exclusiveMaximum"].get<double>()
                                                       : 1e300;
    int n_in = 0;
    for (int i = 0; i < 4000; ++i) {
      // Texts like "-12", "3.25", "0.007".
      const int ip = std::uniform_int_distribution<int>(0, 120)(rng);
      std::string t = rng() % 2 ? "-" : "";
      t += std::to_string(ip);
      if (rng() % 2) t += '.' + std::to_string(rng() % 1000);
      const double v = std::stod(t);
      const bool ok = (s.contains("exclusiveMinimum") ? v > lo : v >= lo) &&
                      (s.contains("exclusiveMaximum") ? v < hi : v <= hi);
      if (full(g, t)) {
        ASSERT_TRUE(ok) << s.dump() << " accepted " << t;
        ++n_in;
      }
    }
    EXPECT_GT(n_in, 0) << s.dump();
    EXPECT_TRUE(full(g, inside)) << s.dump() << " " << inside;
  }
}

TEST(JsonSchemaGrammar, ObjectsArraysRefsAndFormats) {
  const ojson person = {{"type", "object"},
                        {"properties",
                         {{"name", {{"type", "string"}, {"maxLength", 4}}},
                          {"age", {{"type", "integer"}}},
                          {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}}}},
                        {"required", {"name"}},
                        {"additionalProperties", false}};
  EXPECT_TRUE(schema_accepts(person, R"({"name": "Ann", "age": 3})"));
  EXPECT_TRUE(schema_accepts(person, R"({"name":"Ann","tags":["a", "b"]})"));
  EXPECT_TRUE(schema_accepts(person, "{\n  \"name\": \"Bo\"\n}"));
  EXPECT_FALSE(schema_accepts(person, R"({"age": 3})"));                 // name required
  EXPECT_FALSE(schema_accepts(person, R"({"name": "Annie"})"));          // maxLength
  EXPECT_FALSE(schema_accepts(person, R"({"name": "A", "x": 1})"));      // no additional
  EXPECT_FALSE(schema_accepts(person, R"({"age": 3, "name": "Ann"})"));  // schema order

  const ojson extra = {{"type", "object"},
                       {"properties", {{"id", {{"type", "integer"}}}}},
                       {"additionalProperties", {{"type", "boolean"}}}};
  EXPECT_TRUE(schema_accepts(extra, R"({"id": 1, "idx": true, "i": false, "": true})"));
  EXPECT_TRUE(schema_accepts(extra, R"({"other": true})"));
  EXPECT_FALSE(schema_accepts(extra, R"({"id": 1, "id": true})"));  // a declared name again
  EXPECT_FALSE(schema_accepts(extra, R"({"x": 1})"));

  const ojson tuple = {{"type", "array"},
                       {"prefixItems", {{{"type", "integer"}}, {{"type", "string"}}}},
                       {"items", {{"type", "boolean"}}},
                       {"minItems", 1},
                       {"maxItems", 3}};
  EXPECT_TRUE(schema_accepts(tuple, "[1]"));
  EXPECT_TRUE(schema_accepts(tuple, R"([1, "a", true])"));
  EXPECT_FALSE(schema_accepts(tuple, "[]"));
  EXPECT_FALSE(schema_accepts(tuple, R"([1, "a", true, false])"));
  EXPECT_FALSE(schema_accepts(tuple, R"(["a"])"));

  const ojson tree = {{"$defs",
                       {{"node",
                         {{"type", "object"},
                          {"properties",
                           {{"v", {{"type", "integer"}}},
                            {"kids", {{"type", "array"}, {"items", {{"$ref", "#/$defs/node"}}}}}}},
                          {"required", {"v", "kids"}}}}}},
                      {"$ref", "#/$defs/node"}};
  EXPECT_TRUE(schema_accepts(tree, R"({"v": 1, "kids": [{"v": 2, "kids": []}]})"));
  EXPECT_FALSE(schema_accepts(tree, R"({"v": 1, "kids": [{"v": 2}]})"));

  EXPECT_TRUE(schema_accepts({{"type", "string"}, {"format", "date"}}, "\"2024-02-28\""));
  EXPECT_FALSE(schema_accepts({{"type", "string"}, {"format", "date"}}, "\"2024-02-30\""));
  EXPECT_TRUE(schema_accepts({{"type", "string"}, {"format", "date-time"}},
                             "\"2024-02-28T23:59:01.5+01:00\""));
  EXPECT_TRUE(schema_accepts({{"type", "string"}, {"format", "uuid"}},
                             "\"123e4567-e89b-12d3-a456-426614174000\""));
  EXPECT_TRUE(schema_accepts({{"type", ojson::array({"string", "null"})}}, "null"));
  EXPECT_TRUE(schema_accepts({{"type", "integer"}, {"nullable", true}}, "null"));
  EXPECT_TRUE(schema_accepts({{"enum", {1, "a", nullptr}}}, "\"a\""));
  EXPECT_FALSE(schema_accepts({{"const", "a"}}, "\"b\""));
  EXPECT_TRUE(schema_accepts({{"type", "string"}, {"pattern", "^a\"b\\d$"}}, "\"a\\\"b7\""));

  EXPECT_NE(schema_error({{"type", "integer"}, {"multipleOf", 2}}).find("'multipleOf'"),
            std::string::npos);
  EXPECT_NE(schema_error({{"$ref", "#/nope"}}).find("does not resolve"), std::string::npos);
  EXPECT_NE(schema_error({{"$ref", "#"}}).find("finite"), std::string::npos);
  EXPECT_NE(schema_error({{"type", "string"}, {"format", "hostname"}}).find("hostname"),
            std::string::npos);
  EXPECT_NE(schema_error(false).find("matches nothing"), std::string::npos);
}

TEST(RegexGrammar, MatchesLikeFullMatch) {
  auto re = [](const std::string& p) { return compile(regex_to_gbnf(p)); };
  EXPECT_TRUE(full(re("^[A-Z]{3}-\\d{4}$"), "ABC-1234"));
  EXPECT_FALSE(full(re("[A-Z]{3}-\\d{4}"), "AB-1234"));
  EXPECT_TRUE(full(re("(foo|ba+r)?x*"), "baaarxx"));
  EXPECT_TRUE(full(re("(foo|ba+r)?x*"), ""));
  EXPECT_TRUE(full(re("[^a-c\\s]+\\.?"), "xyz."));
  EXPECT_FALSE(full(re("[^a-c\\s]+"), "x y"));
  EXPECT_TRUE(full(re("(?:ab){2,3}"), "ababab"));
  EXPECT_FALSE(full(re("(?:ab){2,3}"), "ab"));
  EXPECT_TRUE(full(re("(a*)*b"), "aab"));  // nullable repetition: no left recursion
  EXPECT_TRUE(full(re("é.\\u00e9"), "éxé"));
  EXPECT_TRUE(full(re("\\x41[\\x30-\\x39]\\u00E9"), "A7é"));
  EXPECT_FALSE(full(re("\\x41"), "B"));
  for (const char* bad :
       {"(ab", "a)", "*a", "a**", "(?=a)", "\\1", "[b-a]", "a{2,1}", "\\b", "\\x4g"}) {
    try {
      regex_to_gbnf(bad);
      ADD_FAILURE() << bad;
    } catch (const GrammarError& e) {
      EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos) << e.what();
    }
  }
}

TEST(ToolCallGrammar, ForcedAndLazyHermes) {
  ToolRequest tools;
  ToolDef f;
  f.name = "get_weather";
  f.parameters = {{"type", "object"},
                  {"properties", {{"city", {{"type", "string"}}}}},
                  {"required", {"city"}},
                  {"additionalProperties", false}};
  tools.tools.push_back(f);
  tools.choice = ToolChoice::REQUIRED;
  auto forced = compile(tool_call_gbnf(tool_call_grammar_spec(ToolSyntax::HERMES, tools)));
  const std::string call =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
  EXPECT_TRUE(full(forced, call));
  EXPECT_TRUE(full(forced, call + "\n" + call));
  EXPECT_FALSE(full(forced, "Sure! " + call));
  EXPECT_FALSE(full(forced, "<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>"));

  tools.choice = ToolChoice::AUTO;
  auto lazy = compile(tool_call_gbnf(tool_call_grammar_spec(ToolSyntax::HERMES, tools)));
  EXPECT_TRUE(full(lazy, "Plain answer with <tool and tool_call> but no marker."));
  EXPECT_TRUE(full(lazy, "Let me check. " + call));
  EXPECT_FALSE(full(lazy, "Let me check. <tool_call>\n{\"name\": \"nope\"}"));
  GrammarMatcher m(lazy);
  EXPECT_TRUE(m.accept_bytes("text <tool_cal"));
  EXPECT_FALSE(m.accept_bytes("l>\n{\"bad"));

  tools.choice = ToolChoice::AUTO;
  auto lead = compile(tool_call_gbnf(tool_call_grammar_spec(ToolSyntax::LLAMA3_JSON, tools)));
  EXPECT_TRUE(full(lead, "  {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}"));
  EXPECT_TRUE(full(lead, "The weather is {\"name\": fine"));
  EXPECT_FALSE(full(lead, " {\"name\": \"other\", \"parameters\": {}}"));
}

TEST(ToolCallGrammar, BadParametersAre400) {
  ToolRequest tools;
  ToolDef f;
  f.name = "f";
  f.parameters = {{"type", "object"}, {"properties", {{"a", {{"not", ojson::object()}}}}}};
  tools.tools.push_back(f);
  tools.choice = ToolChoice::REQUIRED;
  try {
    tool_call_gbnf(tool_call_grammar_spec(ToolSyntax::HERMES, tools));
    ADD_FAILURE();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "tools");
    EXPECT_NE(std::string(e.what()).find("'not'"), std::string::npos);
  }
}

TEST(ToolCallGrammar, ReasoningComesFirst) {
  const std::string g = choice_gbnf({"yes", "no"});
  for (bool starts : {false, true}) {
    std::string root;
    const std::string text = with_reasoning_gbnf(g, starts, root);
    auto vocab =
        std::make_shared<TokenVocab>(std::vector<std::string>{"x"}, std::vector<int32_t>{});
    auto cg = std::make_shared<CompiledGrammar>(parse_gbnf(text, root), vocab);
    const std::string thought = "hmm </thin> <think> ok</think>\n";
    EXPECT_TRUE(full(cg, (starts ? "" : "<think>") + thought + "yes"));
    EXPECT_FALSE(full(cg, (starts ? "" : "<think>") + thought + "maybe"));
    EXPECT_EQ(full(cg, "no"), !starts);
  }
}

// Whatever a model writes under a forced tool-call grammar parses as calls of the callable
// functions with arguments that are JSON objects: random walks (single-byte tokens) through
// each family's call language, then the family's parser.
TEST(ToolCallGrammar, ForcedOutputsAlwaysParse) {
  ToolRequest tools;
  for (const char* name : {"get_weather", "get_time"}) {
    ToolDef f;
    f.name = name;
    f.parameters = {{"type", "object"},
                    {"properties",
                     {{"city", {{"type", "string"}, {"maxLength", 6}}},
                      {"days", {{"type", "integer"}, {"minimum", 1}, {"maximum", 7}}}}},
                    {"required", {"city"}},
                    {"additionalProperties", false}};
    tools.tools.push_back(f);
  }
  std::vector<std::string> bytes;
  for (int b = 1; b < 128; ++b) bytes.push_back(std::string(1, static_cast<char>(b)));
  auto vocab = std::make_shared<TokenVocab>(bytes, std::vector<int32_t>{});
  std::mt19937 rng(11);
  for (ToolSyntax syn : {ToolSyntax::HERMES, ToolSyntax::LLAMA3_JSON, ToolSyntax::MISTRAL,
                         ToolSyntax::MISTRAL_ARGS, ToolSyntax::GENERIC}) {
    for (ToolChoice choice : {ToolChoice::REQUIRED, ToolChoice::NAMED}) {
      tools.choice = choice;
      tools.named = "get_time";
      tools.parallel = false;
      auto cg = std::make_shared<CompiledGrammar>(
          parse_gbnf(tool_call_gbnf(tool_call_grammar_spec(syn, tools))), vocab);
      for (int walk = 0; walk < 10; ++walk) {
        GrammarMatcher m(cg);
        std::string text;
        for (int step = 0; step < 400 && !m.complete(); ++step) {
          if (m.accepting() && rng() % 4 == 0) break;
          TokenBitmask mask;
          m.fill_mask(mask);
          std::vector<int32_t> allowed;
          for (int32_t t = 0; t < vocab->n_vocab(); ++t)
            if ((mask[t >> 6] >> (t & 63)) & 1) allowed.push_back(t);
          ASSERT_FALSE(allowed.empty()) << text;
          // Late in the walk, close things: quotes, braces, brackets.
          std::vector<int32_t> closers;
          for (int32_t a : allowed)
            if (std::string("\"}]>").find(bytes[a][0]) != std::string::npos) closers.push_back(a);
          const auto& from = (step > 60 && !closers.empty()) ? closers : allowed;
          const int32_t t = from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(rng)];
          ASSERT_TRUE(m.accept_token(t));
          text += bytes[t];
        }
        ASSERT_TRUE(m.accepting()) << text;
        ChatOutputOptions o;
        o.parse_tools = true;
        o.tools = syn;
        const ParsedMessage msg = parse_chat_output(o, text);
        ASSERT_EQ(msg.tool_calls.size(), 1u) << tool_syntax_name(syn) << ": " << text;
        if (choice == ToolChoice::NAMED) {
          EXPECT_EQ(msg.tool_calls[0].name, "get_time");
        }
        const auto args = nlohmann::json::parse(msg.tool_calls[0].arguments);
        EXPECT_TRUE(args.is_object() && args.contains("city")) << text;
      }
    }
  }
}
