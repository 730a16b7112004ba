// Tool-call parsing of each syntax on canned model outputs: the complete text, and the same
// text streamed cut at every point, give the same message (content, call ids, names,
// arguments), and deltas come in OpenAI's streaming order.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "chat_output_testing.h"
#include "core/error.h"
#include "server/chat_output.h"
#include "server/tool_format.h"
#include "server/tool_parser.h"

namespace tessera {
namespace {

using testing_util::parse_every_way;

ChatOutputOptions tools_of(ToolSyntax s) {
  ChatOutputOptions o;
  o.parse_tools = true;
  o.tools = s;
  return o;
}

struct Call {
  std::string name, arguments;
};

void expect_message(const ParsedMessage& m, const std::string& content,
                    const std::vector<Call>& calls) {
  EXPECT_EQ(m.content, content);
  EXPECT_EQ(m.reasoning, "");
  ASSERT_EQ(m.tool_calls.size(), calls.size()) << "content: " << m.content;
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(m.tool_calls[i].id, "id" + std::to_string(i));
    EXPECT_EQ(m.tool_calls[i].name, calls[i].name);
    EXPECT_EQ(m.tool_calls[i].arguments, calls[i].arguments);
  }
}

const std::string kArgs = R"({"city": "Paris", "days": 2})";
const std::string kArgs2 = R"({"zone": "Europe/Paris", "options": {"seconds": true}})";

// ---- hermes (Hermes 2 Pro, Qwen2.5, Qwen3)

TEST(ToolParserHermes, OneCall) {
  const auto m = parse_every_way(
      tools_of(ToolSyntax::HERMES),
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " + kArgs + "}\n</tool_call>");
  expect_message(m, "", {{"get_weather", kArgs}});
}

TEST(ToolParserHermes, TextThenTwoCalls) {
  const auto m = parse_every_way(
      tools_of(ToolSyntax::HERMES),
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " + kArgs +
          "}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": " + kArgs2 +
          "}\n</tool_call>");
  expect_message(m, "Let me check.", {{"get_weather", kArgs}, {"get_time", kArgs2}});
}

TEST(ToolParserHermes, NameAfterArgumentsAndExtraKeys) {
  const auto m = parse_every_way(tools_of(ToolSyntax::HERMES),
                                 "<tool_call>{\"arguments\": {\"q\": \"}{\\\"\"}, \"id\": 7, "
                                 "\"name\": \"s\\u00e9arch\"}</tool_call>");
  expect_message(m, "", {{"séarch", R"({"q": "}{\""})"}});
}

TEST(ToolParserHermes, MarkersInsideArgumentsAreText) {
  const std::string args = R"({"html": "<tool_call></tool_call>", "n": [1, {"a": null}]})";
  const auto m = parse_every_way(
      tools_of(ToolSyntax::HERMES),
      "<tool_call>\n{\"name\": \"f\", \"arguments\": " + args + "}\n</tool_call> Done.");
  expect_message(m, "Done.", {{"f", args}});
}

TEST(ToolParserHermes, CallWithoutArgumentsGetsEmptyObject) {
  const auto m =
      parse_every_way(tools_of(ToolSyntax::HERMES), "<tool_call>{\"name\": \"ping\"}</tool_call>");
  expect_message(m, "", {{"ping", "{}"}});
}

TEST(ToolParserHermes, ScalarArgumentsKeepTheirText) {
  const auto m = parse_every_way(tools_of(ToolSyntax::HERMES),
                                 "<tool_call>{\"name\": \"f\", \"arguments\": 42}</tool_call>");
  expect_message(m, "", {{"f", "42"}});
}

TEST(ToolParserHermes, PlainTextIsContent) {
  const std::string text = "No call here: <tool <b>bold</b> a < b\n\n  trailing  ";
  expect_message(parse_every_way(tools_of(ToolSyntax::HERMES), text), text, {});
}

TEST(ToolParserHermes, MarkerWithoutACallIsContent) {
  for (const std::string text :
       {"<tool_call>not json</tool_call> after", "x <tool_call>{\"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": 5}</tool_call>", "<tool_call>{}</tool_call>", "a <tool_call>",
        "<tool_call>\n{\"na"}) {
    SCOPED_TRACE(text);
    expect_message(parse_every_way(tools_of(ToolSyntax::HERMES), text), text, {});
  }
}

TEST(ToolParserHermes, FailedMarkerThenRealCall) {
  const auto m =
      parse_every_way(tools_of(ToolSyntax::HERMES),
                      "<tool_call><tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>");
  expect_message(m, "<tool_call>", {{"f", "{}"}});
}

TEST(ToolParserHermes, ACallBeginsWithItsName) {
  // Once the name is known the call is streamed; cut off there, its arguments are {}.
  const auto m = parse_every_way(tools_of(ToolSyntax::HERMES), "<tool_call>{\"name\": \"f\"");
  expect_message(m, "", {{"f", "{}"}});
}

TEST(ToolParserHermes, TruncatedArgumentsStayCut) {
  // Generation stopped (max_tokens) inside the arguments: the call is kept as far as it went.
  const auto m = parse_every_way(tools_of(ToolSyntax::HERMES),
                                 "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"x");
  expect_message(m, "", {{"f", R"({"a": "x)"}});
}

TEST(ToolParserHermes, BrokenRemainderIsSkippedToTheCloseTag) {
  const auto m =
      parse_every_way(tools_of(ToolSyntax::HERMES),
                      "<tool_call>{\"name\": \"f\", \"arguments\": {}} junk }</tool_call>tail");
  expect_message(m, "tail", {{"f", "{}"}});
}

TEST(ToolParserHermes, UnicodeContentAroundCalls) {
  const auto m = parse_every_way(tools_of(ToolSyntax::HERMES),
                                 "Zürich → 😀\n<tool_call>{\"name\": \"f\", \"arguments\": {\"c\": "
                                 "\"日本\"}}</tool_call>\nfin ✓");
  expect_message(m, "Zürich → 😀fin ✓", {{"f", R"({"c": "日本"})"}});
}

// ---- llama3_json (Llama 3.1 / 3.2 / 3.3)

TEST(ToolParserLlama3, OneCall) {
  const auto m = parse_every_way(tools_of(ToolSyntax::LLAMA3_JSON),
                                 "{\"name\": \"get_weather\", \"parameters\": " + kArgs + "}");
  expect_message(m, "", {{"get_weather", kArgs}});
}

TEST(ToolParserLlama3, PythonTagAndSemicolonSeparatedCalls) {
  const auto m =
      parse_every_way(tools_of(ToolSyntax::LLAMA3_JSON),
                      " <|python_tag|>{\"name\": \"get_weather\", \"parameters\": " + kArgs +
                          "}; {\"name\": \"get_time\", \"arguments\": " + kArgs2 + "}");
  expect_message(m, "", {{"get_weather", kArgs}, {"get_time", kArgs2}});
}

TEST(ToolParserLlama3, JsonAnswerThatIsNotACallIsContent) {
  for (const std::string text :
       {"{\"answer\": 42}", "{\"name\": \"Ann\", \"age\": 3}",
        "The JSON {\"name\": \"f\", \"parameters\": {}}", "  {\"name\": \"f\"",
        "<|python_tag|>print(1)", "[{\"name\": \"f\", \"parameters\": {}}]"}) {
    SCOPED_TRACE(text);
    expect_message(parse_every_way(tools_of(ToolSyntax::LLAMA3_JSON), text), text, {});
  }
}

TEST(ToolParserLlama3, TextAfterTheCall) {
  const auto m = parse_every_way(tools_of(ToolSyntax::LLAMA3_JSON),
                                 "{\"name\": \"f\", \"parameters\": {}}\n\nDone.");
  expect_message(m, "Done.", {{"f", "{}"}});
}

// ---- mistral

TEST(ToolParserMistral, ArrayForm) {
  const auto m = parse_every_way(
      tools_of(ToolSyntax::MISTRAL),
      "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": " + kArgs +
          ", \"id\": \"abc123XYZ\"}, {\"name\": \"get_time\", \"arguments\": " + kArgs2 + "}]");
  expect_message(m, "", {{"get_weather", kArgs}, {"get_time", kArgs2}});
}

TEST(ToolParserMistral, NameArgsForm) {
  const auto m = parse_every_way(tools_of(ToolSyntax::MISTRAL_ARGS),
                                 "I'll look.[TOOL_CALLS]get_weather[ARGS]" + kArgs +
                                     "[TOOL_CALLS]get_time[CALL_ID]def456UVW[ARGS]" + kArgs2);
  expect_message(m, "I'll look.", {{"get_weather", kArgs}, {"get_time", kArgs2}});
}

TEST(ToolParserMistral, BothFormsWhicheverTheTemplate) {
  for (ToolSyntax s : {ToolSyntax::MISTRAL, ToolSyntax::MISTRAL_ARGS}) {
    expect_message(
        parse_every_way(tools_of(s), "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {}}]"), "",
        {{"f", "{}"}});
    expect_message(parse_every_way(tools_of(s), "[TOOL_CALLS]f[ARGS] {\"a\": [1]}"), "",
                   {{"f", R"({"a": [1]})"}});
  }
}

TEST(ToolParserMistral, NotACallIsContent) {
  for (const std::string text : {"[TOOL_CALLS] what?", "[TOOL_CALLS][]", "[TOOL_CALLS][{\"x\": 1}]",
                                 "[TOOL_CALLS][ARGS]{}", "[TOOL_CALLS", "[INST] [TOOL] [ARGS]"}) {
    SCOPED_TRACE(text);
    expect_message(parse_every_way(tools_of(ToolSyntax::MISTRAL), text), text, {});
  }
}

// ---- generic

TEST(ToolParserGeneric, ObjectOrArray) {
  expect_message(parse_every_way(tools_of(ToolSyntax::GENERIC),
                                 "{\"name\": \"get_weather\", \"arguments\": " + kArgs + "}"),
                 "", {{"get_weather", kArgs}});
  expect_message(
      parse_every_way(tools_of(ToolSyntax::GENERIC),
                      "[{\"name\": \"get_weather\", \"arguments\": " + kArgs +
                          "},\n {\"name\": \"get_time\", \"arguments\": " + kArgs2 + "}]"),
      "", {{"get_weather", kArgs}, {"get_time", kArgs2}});
}

TEST(ToolParserGeneric, TextIsContent) {
  for (const std::string text : {"Hello there", "[1, 2, 3]", "{\"a\": 1}", " "}) {
    SCOPED_TRACE(text);
    expect_message(parse_every_way(tools_of(ToolSyntax::GENERIC), text), text, {});
  }
}

// ---- ids, syntax detection and names

TEST(ToolParser, IdsAreOpenAIOrMistralShaped) {
  const std::string id = new_tool_call_id(ToolSyntax::HERMES);
  EXPECT_EQ(id.rfind("call_", 0), 0u);
  EXPECT_EQ(id.size(), 29u);
  const std::string mid = new_tool_call_id(ToolSyntax::MISTRAL);
  EXPECT_EQ(mid.size(), 9u);
  for (char c : mid) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << mid;
  EXPECT_NE(new_tool_call_id(ToolSyntax::HERMES), new_tool_call_id(ToolSyntax::HERMES));
}

TEST(ToolParser, SyntaxNamesAndErrors) {
  EXPECT_EQ(tool_syntax_from_name("hermes", ""), ToolSyntax::HERMES);
  EXPECT_EQ(tool_syntax_from_name("llama3_json", ""), ToolSyntax::LLAMA3_JSON);
  EXPECT_EQ(tool_syntax_from_name("mistral", "x"), ToolSyntax::MISTRAL);
  EXPECT_EQ(tool_syntax_from_name("mistral", "[ARGS]"), ToolSyntax::MISTRAL_ARGS);
  EXPECT_EQ(tool_syntax_from_name("generic", "<tool_call>"), ToolSyntax::GENERIC);
  EXPECT_EQ(tool_syntax_from_name("auto", "<tool_call>"), ToolSyntax::HERMES);
  EXPECT_THROW(tool_syntax_from_name("pythonic", ""), Error);
  EXPECT_STREQ(tool_syntax_name(ToolSyntax::MISTRAL_ARGS), "mistral");
}

}  // namespace
}  // namespace tessera
