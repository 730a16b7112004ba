#include "server/prompt_builder.h"

#include "loader/gguf.h"
#include "models/model.h"
#include "server/api_error.h"
#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tessera {

using ojson = nlohmann::ordered_json;

namespace {

// The literal markers each parser looks for.
std::vector<std::string> tool_markers(ToolSyntax s) {
  switch (s) {
    case ToolSyntax::HERMES:
      return {"<tool_call>", "</tool_call>"};
    case ToolSyntax::LLAMA3_JSON:
      return {"<|python_tag|>"};
    case ToolSyntax::MISTRAL:
    case ToolSyntax::MISTRAL_ARGS:
      return {"[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"};
    case ToolSyntax::GENERIC:
      return {};
  }
  return {};
}

}  // namespace

ojson chat_template_context(const CompletionRequest& r, const std::string& bos_token,
                            const std::string& eos_token) {
  ojson ctx = {{"messages", r.messages}};
  if (!r.tools.raw.is_null()) ctx["tools"] = r.tools.raw;
  if (!r.documents.is_null()) ctx["documents"] = r.documents;
  ctx["add_generation_prompt"] = r.add_generation_prompt;
  ctx["bos_token"] = bos_token;
  ctx["eos_token"] = eos_token;
  for (const auto& [k, v] : r.template_kwargs.items()) ctx[k] = v;
  return ctx;
}

PromptBuilder::PromptBuilder(const Model& model, const std::string& chat_template,
                             const ChatParserNames& parsers)
    : tok_(model.tokenizer()) {
  if (tok_.bos_id() >= 0) bos_text_ = tok_.token_text(tok_.bos_id());
  if (tok_.eos_id() >= 0) eos_text_ = tok_.token_text(tok_.eos_id());
  const std::optional<std::string> src =
      chat_template.empty() ? model.file().get_string("tokenizer.chat_template") : chat_template;
  const std::string source = src.value_or("");
  tool_syntax_ = tool_syntax_from_name(parsers.tool_call_parser, source);
  reasoning_ = reasoning_syntax_from_name(parsers.reasoning_parser, source);
  for (const std::string& m : tool_markers(tool_syntax_))
    tool_markers_special_ = tool_markers_special_ || is_hidden_special(m);
  for (const char* m : {"<think>", "</think>"})
    reasoning_markers_special_ =
        reasoning_markers_special_ || (reasoning_ != ReasoningSyntax::NONE && is_hidden_special(m));
  if (!src) return;
  try {
    tmpl_ = std::make_unique<ChatTemplate>(*src);
  } catch (const Error& e) {
    tmpl_error_ = e.what();
  }
}

PromptBuilder::~PromptBuilder() = default;

// One token of the vocabulary whose text the detokenizer hides by default.
bool PromptBuilder::is_hidden_special(const std::string& text) const {
  const std::vector<int32_t> ids = tok_.encode(text, /*add_special=*/false, /*parse_special=*/true);
  return ids.size() == 1 && tok_.token_to_piece(ids[0], false).empty() &&
         tok_.token_to_piece(ids[0], true) == text;
}

std::string PromptBuilder::render_chat(const CompletionRequest& r) const {
  if (!tmpl_) {
    if (!tmpl_error_.empty())
      throw ApiError(400, "the model's chat template does not parse: " + tmpl_error_);
    throw ApiError(400,
                   "the model has no chat template (tokenizer.chat_template is missing from its "
                   "metadata); use /v1/completions with a formatted prompt instead");
  }
  try {
    return tmpl_->render(chat_template_context(r, bos_text_, eos_text_));
  } catch (const Error& e) {
    throw ApiError(400, std::string("chat template error: ") + e.what(), "messages");
  }
}

ChatPrompt PromptBuilder::chat_prompt(const CompletionRequest& r) const {
  ChatPrompt p;
  p.text = render_chat(r);
  // The template writes the special tokens it wants (parse_special) and often BOS too.
  // BOS is added only when the model asks for it and the template did not produce it, so
  // a prompt never starts with two BOS tokens (llama-server strips a templated BOS before
  // adding its own; vLLM adds none and trusts the template; both give one BOS).
  p.ids = tok_.encode(p.text, /*add_special=*/false, /*parse_special=*/true);
  if (tok_.add_bos() && tok_.bos_id() >= 0 && (p.ids.empty() || p.ids[0] != tok_.bos_id()))
    p.ids.insert(p.ids.begin(), tok_.bos_id());
  if (p.ids.empty()) throw ApiError(400, "the chat template rendered an empty prompt", "messages");

  p.output.reasoning = reasoning_;
  p.output.starts_in_reasoning =
      reasoning_ != ReasoningSyntax::NONE && prompt_opens_reasoning(p.text);
  p.output.parse_tools = r.tools.active();
  p.output.tools = tool_syntax_;
  p.render_special = (p.output.parse_tools && tool_markers_special_) ||
                     (p.output.reasoning != ReasoningSyntax::NONE && reasoning_markers_special_);
  return p;
}

std::vector<int32_t> PromptBuilder::completion_tokens(const PromptInput& p) const {
  if (p.is_ids) return p.ids;
  std::vector<int32_t> ids = tok_.encode(p.text, /*add_special=*/true, /*parse_special=*/true);
  if (ids.empty()) throw ApiError(400, "the prompt is empty", "prompt");
  return ids;
}

}  // namespace tessera
