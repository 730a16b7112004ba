// Chat template rendering against Python jinja2's output (tests/data/chat_templates/, written
// by scripts/gen_chat_template_refs.py in the configuration transformers uses).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "template/chat_template.h"
#include "test_files.h"

namespace tessera {
namespace {

using ojson = nlohmann::ordered_json;
using testing_util::chat_template_data;

// jinja2 reports raise_exception(msg) as "TemplateError: msg"; Tessera's message is msg.
constexpr const char* kRaisedPrefix = "TemplateError: ";

void check_case(const ChatTemplate& tmpl, const ojson& c, const std::string& label) {
  const ojson& ctx = c.at("context");
  if (c.contains("expected")) {
    try {
      EXPECT_EQ(tmpl.render(ctx), c.at("expected").get<std::string>()) << label;
    } catch (const Error& e) {
      ADD_FAILURE() << label << ": unexpected error: " << e.what();
    }
    return;
  }
  const std::string want = c.at("error").get<std::string>();
  try {
    std::string got = tmpl.render(ctx);
    ADD_FAILURE() << label << ": expected error '" << want << "', rendered: " << got;
  } catch (const Error& e) {
    if (want.rfind(kRaisedPrefix, 0) == 0) {
      EXPECT_EQ(std::string(e.what()), want.substr(std::string(kRaisedPrefix).size())) << label;
    } else {
      EXPECT_NE(std::string(e.what()).find("chat template error"), std::string::npos) << label;
    }
  }
}

class ModelTemplates : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelTemplates, MatchesJinja2ByteForByte) {
  const std::string name = GetParam();
  ChatTemplate tmpl(chat_template_data(name + ".jinja"));
  ojson cases = ojson::parse(chat_template_data(name + ".cases.json"));
  ASSERT_FALSE(cases.empty());
  for (size_t i = 0; i < cases.size(); ++i) {
    check_case(tmpl, cases[i], name + " case " + std::to_string(i));
  }
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, ModelTemplates,
                         ::testing::Values("smollm2", "llama3", "qwen3", "gemma3"));

TEST(ChatTemplate, ExpressionsFiltersAndTestsMatchJinja2) {
  ojson cases = ojson::parse(chat_template_data("expressions.json"));
  ASSERT_GT(cases.size(), 50u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const ojson& c = cases[i];
    const std::string src = c.at("template").get<std::string>();
    const std::string label = "expression case " + std::to_string(i) + ": " + src;
    if (c.contains("syntax_error")) {
      try {
        ChatTemplate t(src);
        ADD_FAILURE() << label << ": parsed, but jinja2 says: " << c.at("syntax_error");
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("syntax error (line 1)"), std::string::npos)
            << label << ": " << e.what();
      }
      continue;
    }
    try {
      ChatTemplate t(src);
      check_case(t, c, label);
    } catch (const Error& e) {
      ADD_FAILURE() << label << ": failed to parse: " << e.what();
    }
  }
}

TEST(ChatTemplate, SyntaxErrorNamesLineAndProblem) {
  try {
    ChatTemplate t("line one\n{% for m in messages %}\n{{ m.content }}\n");
    FAIL() << "expected a syntax error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("syntax error"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'endfor'"), std::string::npos) << msg;
  }
  try {
    ChatTemplate t("ok\n\n{{ 1 + }}");
    FAIL() << "expected a syntax error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(line 3)"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, RaiseExceptionMessageIsPassedThrough) {
  ChatTemplate t(
      "{% if messages|length == 0 %}{{ raise_exception('No messages: ' ~ 0) }}{% endif %}ok");
  EXPECT_EQ(t.render(nlohmann::json{{"messages", {{{"role", "user"}, {"content", "x"}}}}}), "ok");
  try {
    t.render(nlohmann::json{{"messages", nlohmann::json::array()}});
    FAIL() << "expected raise_exception to throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "No messages: 0");
  }
}

TEST(ChatTemplate, RuntimeErrorNamesLine) {
  ChatTemplate t("a\n{{ messages[0].content + 1 }}");
  try {
    t.render(nlohmann::json{{"messages", {{{"content", "x"}}}}});
    FAIL() << "expected a type error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(line 2)"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, ToolsAndDocumentsDefaultToNone) {
  // transformers always passes tools=None and documents=None, so they are defined.
  ChatTemplate t("{{ tools is defined }} {{ tools is none }} {{ documents is none }}");
  EXPECT_EQ(t.render(nlohmann::json::object()), "True True True");
}

TEST(ChatTemplate, StrftimeNowFormatsTheCurrentDate) {
  ChatTemplate t("{{ strftime_now('%Y') }}");
  std::string year = t.render(nlohmann::json::object());
  ASSERT_EQ(year.size(), 4u);
  EXPECT_GE(std::stoi(year), 2024);
}

TEST(ChatTemplate, ContextMustBeAnObject) {
  ChatTemplate t("x");
  EXPECT_THROW(t.render(nlohmann::json::array()), Error);
}

}  // namespace
}  // namespace tessera
