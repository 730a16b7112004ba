// Request prompts -> token ids: chat messages through the model's chat template, raw
// completion prompts through the tokenizer. Failures are the client's (400), never a
// silent fallback to some other format. The template also decides how a chat answer is
// read back (its tool-call syntax and reasoning markers), unless the server overrides it.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/chat_output.h"
#include "server/openai_request.h"

namespace tessera {

class ChatTemplate;
class Model;
class Tokenizer;

// --tool-call-parser / --reasoning-parser: "auto" (from the template) or a parser's name.
struct ChatParserNames {
  std::string tool_call_parser = "auto";
  std::string reasoning_parser = "auto";
};

// A chat request's prompt and how its output is to be read.
struct ChatPrompt {
  std::string text;  // the rendered template
  std::vector<int32_t> ids;
  ChatOutputOptions output;
  // The parsers' markers are special tokens of this vocabulary, hidden unless the
  // detokenizer renders special tokens.
  bool render_special = false;
};

// The variables a chat template sees for `r`, as transformers' apply_chat_template passes
// them: messages, tools (when given), documents (when given), add_generation_prompt, the
// special tokens, then chat_template_kwargs (which may override the special tokens).
nlohmann::ordered_json chat_template_context(const CompletionRequest& r,
                                             const std::string& bos_token,
                                             const std::string& eos_token);

class PromptBuilder {
 public:
  // Parses `chat_template` when given (a --chat-template override), else the model's
  // `tokenizer.chat_template`. A template that does not parse is remembered and reported
  // on each chat request. Throws tessera::Error for an unknown parser name.
  explicit PromptBuilder(const Model& model, const std::string& chat_template = "",
                         const ChatParserNames& parsers = {});
  ~PromptBuilder();

  bool has_chat_template() const { return tmpl_ != nullptr; }
  const std::string& template_error() const { return tmpl_error_; }
  ToolSyntax tool_syntax() const { return tool_syntax_; }
  ReasoningSyntax reasoning_syntax() const { return reasoning_; }

  // The rendered chat prompt. Throws ApiError(400) when the model has no template or
  // rendering fails (with the template's message).
  std::string render_chat(const CompletionRequest& r) const;
  // The rendered prompt, its tokens and how to read the output.
  ChatPrompt chat_prompt(const CompletionRequest& r) const;
  // A completions prompt: text gets the model's BOS/EOS as its metadata asks; ids are the
  // client's, unchanged.
  std::vector<int32_t> completion_tokens(const PromptInput& p) const;

 private:
  bool is_hidden_special(const std::string& text) const;

  const Tokenizer& tok_;
  std::unique_ptr<ChatTemplate> tmpl_;
  std::string tmpl_error_;
  std::string bos_text_, eos_text_;
  ToolSyntax tool_syntax_ = ToolSyntax::GENERIC;
  ReasoningSyntax reasoning_ = ReasoningSyntax::NONE;
  bool tool_markers_special_ = false, reasoning_markers_special_ = false;
};

}  // namespace tessera
