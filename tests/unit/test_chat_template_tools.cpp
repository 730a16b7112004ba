// Tool-calling conversations through real chat templates, compared byte for byte with
// transformers' rendering (tests/data/chat_templates/<name>.tools.json, written by
// scripts/gen_chat_template_refs.py). Each case is a chat request body as an OpenAI client
// sends it; it goes through Tessera's request parser and template context, as a server
// request does.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "server/openai_request.h"
#include "server/prompt_builder.h"
#include "template/chat_template.h"
#include "test_files.h"

namespace tessera {
namespace {

using ojson = nlohmann::ordered_json;
using testing_util::chat_template_data;

constexpr int kVocab = 1000;
constexpr const char* kRaisedPrefix = "TemplateError: ";

class ToolTemplates : public ::testing::TestWithParam<std::string> {};

TEST_P(ToolTemplates, RoundTripsMatchTransformers) {
  const std::string name = GetParam();
  const ChatTemplate tmpl(chat_template_data(name + ".jinja"));
  const ojson cases = ojson::parse(chat_template_data(name + ".tools.json"));
  ASSERT_GE(cases.size(), 3u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const ojson& c = cases[i];
    const std::string label = name + " case " + std::to_string(i);
    const CompletionRequest r = parse_chat_request(c.at("request"), kVocab);
    const ojson& special = c.at("special_tokens");
    ojson ctx =
        chat_template_context(r, special.value("bos_token", ""), special.value("eos_token", ""));
    // transformers passes every special token of the tokenizer; the templates here read
    // bos_token and eos_token only, which chat_template_context sets.
    for (const auto& [k, v] : special.items())
      if (!ctx.contains(k)) ctx[k] = v;
    if (c.contains("expected")) {
      try {
        EXPECT_EQ(tmpl.render(ctx), c.at("expected").get<std::string>()) << label;
      } catch (const Error& e) {
        ADD_FAILURE() << label << ": unexpected error: " << e.what();
      }
    } else {
      const std::string want = c.at("error").get<std::string>();
      ASSERT_EQ(want.rfind(kRaisedPrefix, 0), 0u) << label << ": " << want;
      try {
        const std::string got = tmpl.render(ctx);
        ADD_FAILURE() << label << ": expected '" << want << "', rendered: " << got;
      } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), want.substr(std::string(kRaisedPrefix).size())) << label;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, ToolTemplates,
                         ::testing::Values("qwen3", "qwen25", "hermes2pro", "llama31", "llama32",
                                           "mistral_nemo", "mistral_small32", "deepseek_r1_qwen"));

}  // namespace
}  // namespace tessera
