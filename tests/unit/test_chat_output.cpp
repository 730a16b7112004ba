// Reasoning separation, reasoning + tool calls together, and the round trip through the
// real templates: a tool-calling assistant turn as each template writes it (in
// transformers' rendering, tests/data/chat_templates/<name>.tools.json) parses back into
// the message it was rendered from, whichever way the text is cut.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "chat_output_testing.h"
#include "core/error.h"
#include "server/chat_output.h"
#include "server/openai_format.h"
#include "test_files.h"

namespace tessera {
namespace {

using ojson = nlohmann::ordered_json;
using testing_util::chat_template_data;
using testing_util::parse_every_way;

ChatOutputOptions think(bool starts_inside = false) {
  ChatOutputOptions o;
  o.reasoning = ReasoningSyntax::THINK;
  o.starts_in_reasoning = starts_inside;
  return o;
}

void expect_split(const ParsedMessage& m, const std::string& reasoning,
                  const std::string& content) {
  EXPECT_EQ(m.reasoning, reasoning);
  EXPECT_EQ(m.content, content);
  EXPECT_TRUE(m.tool_calls.empty());
}

TEST(ReasoningParser, ThinkBlockAtTheStart) {
  expect_split(parse_every_way(think(), "<think>\nLet me add.\n</think>\n\nIt is 4."),
               "Let me add.", "It is 4.");
  expect_split(parse_every_way(think(), "  <think>a</think>b"), "a", "b");
  expect_split(parse_every_way(think(), "<think>a\n\nb  \n</think>"), "a\n\nb", "");
  expect_split(parse_every_way(think(), "<think>\n\n</think>\n\nHi there\n"), "", "Hi there\n");
}

TEST(ReasoningParser, NoThinkBlockIsAllContent) {
  for (const std::string text :
       {"Hello <think>x</think>", "  plain\n", "<thin", "</think>after", ""}) {
    SCOPED_TRACE(text);
    expect_split(parse_every_way(think(), text), "", text);
  }
}

TEST(ReasoningParser, UnclosedThoughtIsAllReasoning) {
  expect_split(parse_every_way(think(), "<think>\nhmm, a long thought ending in </thi"),
               "hmm, a long thought ending in </thi", "");
}

TEST(ReasoningParser, PromptOpenedTheThought) {
  expect_split(parse_every_way(think(true), "Let me add.\n</think>\n\nIt is 4."), "Let me add.",
               "It is 4.");
  expect_split(parse_every_way(think(true), "\n<think>\nA</think>B"), "A", "B");
  expect_split(parse_every_way(think(true), "still thinking"), "still thinking", "");
  expect_split(parse_every_way(think(true), "</think>Answer with <think> inside"), "",
               "Answer with <think> inside");
}

TEST(ReasoningParser, PromptOpensReasoning) {
  EXPECT_TRUE(prompt_opens_reasoning("<｜User｜>hi<｜Assistant｜><think>\n"));
  EXPECT_TRUE(prompt_opens_reasoning("x<think>"));
  EXPECT_FALSE(prompt_opens_reasoning("<｜Assistant｜><think>\n</think>"));
  EXPECT_FALSE(prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  EXPECT_FALSE(prompt_opens_reasoning("<|im_start|>assistant\n"));
  EXPECT_FALSE(prompt_opens_reasoning("say <think> then text"));
}

std::string template_source(const std::string& name) {
  return chat_template_data(name + ".jinja");
}

TEST(ReasoningParser, DetectedFromTheTemplate) {
  EXPECT_EQ(detect_reasoning_syntax(template_source("qwen3")), ReasoningSyntax::THINK);
  EXPECT_EQ(detect_reasoning_syntax(template_source("deepseek_r1_qwen")), ReasoningSyntax::THINK);
  EXPECT_EQ(detect_reasoning_syntax(template_source("qwen25")), ReasoningSyntax::NONE);
  EXPECT_EQ(detect_reasoning_syntax(template_source("smollm2")), ReasoningSyntax::NONE);
  EXPECT_EQ(reasoning_syntax_from_name("none", template_source("qwen3")), ReasoningSyntax::NONE);
  EXPECT_EQ(reasoning_syntax_from_name("deepseek_r1", ""), ReasoningSyntax::THINK);
  EXPECT_EQ(reasoning_syntax_from_name("qwen3", ""), ReasoningSyntax::THINK);
  EXPECT_THROW(reasoning_syntax_from_name("granite", ""), Error);
  EXPECT_STREQ(reasoning_end_marker(ReasoningSyntax::THINK), "</think>");
  EXPECT_STREQ(reasoning_end_marker(ReasoningSyntax::NONE), "");
}

TEST(ToolSyntax, DetectedFromTheTemplate) {
  EXPECT_EQ(detect_tool_syntax(template_source("qwen3")), ToolSyntax::HERMES);
  EXPECT_EQ(detect_tool_syntax(template_source("qwen25")), ToolSyntax::HERMES);
  EXPECT_EQ(detect_tool_syntax(template_source("hermes2pro")), ToolSyntax::HERMES);
  EXPECT_EQ(detect_tool_syntax(template_source("llama31")), ToolSyntax::LLAMA3_JSON);
  EXPECT_EQ(detect_tool_syntax(template_source("llama32")), ToolSyntax::LLAMA3_JSON);
  EXPECT_EQ(detect_tool_syntax(template_source("mistral_nemo")), ToolSyntax::MISTRAL);
  EXPECT_EQ(detect_tool_syntax(template_source("mistral_small32")), ToolSyntax::MISTRAL_ARGS);
  EXPECT_EQ(detect_tool_syntax(template_source("smollm2")), ToolSyntax::GENERIC);
  EXPECT_EQ(detect_tool_syntax(template_source("gemma3")), ToolSyntax::GENERIC);
  EXPECT_EQ(detect_tool_syntax(template_source("llama3")), ToolSyntax::GENERIC);
}

TEST(ChatOutput, ReasoningThenToolCall) {
  ChatOutputOptions o = think();
  o.parse_tools = true;
  o.tools = ToolSyntax::HERMES;
  const ParsedMessage m = parse_every_way(
      o,
      "<think>\nI need the weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", "
      "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
  EXPECT_EQ(m.reasoning, "I need the weather.");
  EXPECT_EQ(m.content, "");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"city": "Paris"})");
}

TEST(ChatOutput, CallMarkersInsideTheThoughtAreReasoning) {
  ChatOutputOptions o = think();
  o.parse_tools = true;
  o.tools = ToolSyntax::HERMES;
  const std::string thought = "maybe <tool_call>{\"name\": \"x\", \"arguments\": {}}</tool_call>?";
  const ParsedMessage m = parse_every_way(o, "<think>" + thought + "</think>The answer.");
  EXPECT_EQ(m.reasoning, thought);
  EXPECT_EQ(m.content, "The answer.");
  EXPECT_TRUE(m.tool_calls.empty());
}

TEST(ChatOutput, WithoutParsersTheTextIsContentUnchanged) {
  const std::string text = " <think>x</think> <tool_call>{\"name\": \"f\"}</tool_call> ";
  const ParsedMessage m = parse_every_way(ChatOutputOptions{}, text);
  EXPECT_EQ(m.content, text);
  EXPECT_EQ(m.reasoning, "");
}

TEST(ChatOutput, OpenAIShapes) {
  using nlohmann::json;
  ParsedMessage m;
  m.reasoning = "r";
  m.tool_calls.push_back({"call_1", "f", "{\"a\": 1}"});
  EXPECT_EQ(chat_message_json(m),
            json::parse(R"({"role": "assistant", "content": null, "reasoning_content": "r",
                            "tool_calls": [{"id": "call_1", "type": "function",
                                            "function": {"name": "f", "arguments": "{\"a\": 1}"}}]})"));
  EXPECT_EQ(chat_message_json(ParsedMessage{}),
            json::parse(R"({"role": "assistant", "content": ""})"));

  MessageDelta begin;
  begin.kind = MessageDelta::Kind::TOOL_CALL_BEGIN;
  begin.index = 1;
  begin.id = "call_2";
  begin.name = "g";
  EXPECT_EQ(message_delta_json(begin),
            json::parse(R"({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                            "function": {"name": "g", "arguments": ""}}]})"));
  MessageDelta args;
  args.kind = MessageDelta::Kind::TOOL_CALL_ARGS;
  args.index = 1;
  args.text = "{\"b";
  EXPECT_EQ(message_delta_json(args),
            json::parse(R"({"tool_calls": [{"index": 1, "function": {"arguments": "{\"b"}}]})"));
  MessageDelta r;
  r.kind = MessageDelta::Kind::REASONING;
  r.text = "hm";
  EXPECT_EQ(message_delta_json(r), json::parse(R"({"reasoning_content": "hm"})"));

  EXPECT_EQ(chat_finish_reason(RequestStatus::FINISHED_STOPPED, true), "tool_calls");
  EXPECT_EQ(chat_finish_reason(RequestStatus::FINISHED_LENGTH, true), "length");
  EXPECT_EQ(chat_finish_reason(RequestStatus::FINISHED_STOPPED, false), "stop");
}

// ---- round trips through the real templates

struct Family {
  std::string name;
  ToolSyntax syntax;
  std::string turn_begin, turn_end;  // an assistant turn in the rendered conversation
  bool writes_call_content = true;   // the template writes the content of a calling turn
};

// The assistant turns of `rendered` that hold tool calls.
std::vector<std::string> call_turns(const Family& f, const std::string& rendered) {
  std::vector<std::string> out;
  size_t p = 0;
  while ((p = rendered.find(f.turn_begin, p)) != std::string::npos) {
    const size_t b = f.turn_begin == "[TOOL_CALLS]" ? p : p + f.turn_begin.size();
    const size_t e = rendered.find(f.turn_end, b);
    if (e == std::string::npos) break;
    const std::string turn = rendered.substr(b, e - b);
    const bool is_call =
        f.syntax == ToolSyntax::LLAMA3_JSON
            ? turn.rfind("{\"name\"", 0) == 0
            : turn.find(f.syntax == ToolSyntax::HERMES ? "<tool_call>" : "[TOOL_CALLS]") !=
                  std::string::npos;
    if (is_call) out.push_back(turn);
    p = e;
  }
  return out;
}

class TemplateCallTurns : public ::testing::TestWithParam<Family> {};

TEST_P(TemplateCallTurns, ParseBackIntoTheirMessages) {
  const Family& f = GetParam();
  const ojson cases = ojson::parse(chat_template_data(f.name + ".tools.json"));
  int n_checked = 0;
  for (const ojson& c : cases) {
    if (!c.contains("expected")) continue;
    std::vector<ojson> sent;  // the request's tool-calling assistant messages
    for (const ojson& m : c["request"]["messages"])
      if (m.value("role", "") == "assistant" && m.contains("tool_calls") &&
          !m["tool_calls"].is_null())
        sent.push_back(m);
    const std::vector<std::string> turns = call_turns(f, c["expected"].get<std::string>());
    ASSERT_EQ(turns.size(), sent.size()) << c["expected"];
    for (size_t k = 0; k < turns.size(); ++k) {
      SCOPED_TRACE(turns[k]);
      ChatOutputOptions o;
      o.parse_tools = true;
      o.tools = f.syntax;
      if (turns[k].find("</think>") != std::string::npos) o.reasoning = ReasoningSyntax::THINK;
      const ParsedMessage m = parse_every_way(o, turns[k]);
      const ojson& want = sent[k];
      if (f.writes_call_content)
        EXPECT_EQ(m.content, want["content"].is_null() ? "" : want["content"].get<std::string>());
      else
        EXPECT_EQ(m.content, "");
      if (o.reasoning == ReasoningSyntax::THINK) {
        EXPECT_EQ(m.reasoning, want.value("reasoning_content", ""));
      }
      ASSERT_EQ(m.tool_calls.size(), want["tool_calls"].size());
      for (size_t i = 0; i < m.tool_calls.size(); ++i) {
        const ojson& fn = want["tool_calls"][i]["function"];
        EXPECT_EQ(m.tool_calls[i].name, fn["name"].get<std::string>());
        const ojson args = fn["arguments"].is_string()
                               ? ojson::parse(fn["arguments"].get<std::string>())
                               : fn["arguments"];
        EXPECT_EQ(ojson::parse(m.tool_calls[i].arguments), args);
      }
      ++n_checked;
    }
  }
  EXPECT_GE(n_checked, 3) << f.name;
}

INSTANTIATE_TEST_SUITE_P(
    ChatOutput, TemplateCallTurns,
    ::testing::Values(Family{"qwen3", ToolSyntax::HERMES, "<|im_start|>assistant\n", "<|im_end|>"},
                      Family{"qwen25", ToolSyntax::HERMES, "<|im_start|>assistant\n", "<|im_end|>"},
                      Family{"hermes2pro", ToolSyntax::HERMES, "<|im_start|>assistant",
                             "<|im_end|>", false},
                      Family{"llama31", ToolSyntax::LLAMA3_JSON,
                             "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"},
                      Family{"llama32", ToolSyntax::LLAMA3_JSON,
                             "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"},
                      Family{"mistral_nemo", ToolSyntax::MISTRAL, "[TOOL_CALLS]", "</s>"},
                      Family{"mistral_small32", ToolSyntax::MISTRAL_ARGS, "[TOOL_CALLS]", "</s>"}),
    [](const ::testing::TestParamInfo<Family>& i) { return i.param.name; });

}  // namespace
}  // namespace tessera
