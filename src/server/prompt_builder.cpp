#include "server/prompt_builder.h"

#include "loader/gguf.h"
#include "models/model.h"
#include "server/api_error.h"
#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tessera {

PromptBuilder::PromptBuilder(const Model& model, const std::string& chat_template)
    : tok_(model.tokenizer()) {
  if (tok_.bos_id() >= 0) bos_text_ = tok_.token_text(tok_.bos_id());
  if (tok_.eos_id() >= 0) eos_text_ = tok_.token_text(tok_.eos_id());
  const std::optional<std::string> src =
      chat_template.empty() ? model.file().get_string("tokenizer.chat_template") : chat_template;
  if (!src) return;
  try {
    tmpl_ = std::make_unique<ChatTemplate>(*src);
  } catch (const Error& e) {
    tmpl_error_ = e.what();
  }
}

PromptBuilder::~PromptBuilder() = default;

std::string PromptBuilder::render_chat(const nlohmann::json& messages,
                                       bool add_generation_prompt) const {
  if (!tmpl_) {
    if (!tmpl_error_.empty())
      throw ApiError(400, "the model's chat template does not parse: " + tmpl_error_);
    throw ApiError(400,
                   "the model has no chat template (tokenizer.chat_template is missing from its "
                   "metadata); use /v1/completions with a formatted prompt instead");
  }
  nlohmann::json ctx = {{"messages", messages},
                        {"add_generation_prompt", add_generation_prompt},
                        {"bos_token", bos_text_},
                        {"eos_token", eos_text_}};
  try {
    return tmpl_->render(ctx);
  } catch (const Error& e) {
    throw ApiError(400, std::string("chat template error: ") + e.what(), "messages");
  }
}

std::vector<int32_t> PromptBuilder::chat_tokens(const nlohmann::json& messages,
                                                bool add_generation_prompt) const {
  return chat_text_tokens(render_chat(messages, add_generation_prompt));
}

std::vector<int32_t> PromptBuilder::chat_text_tokens(const std::string& text) const {
  // The template writes the special tokens it wants (parse_special) and often BOS too.
  // BOS is added only when the model asks for it and the template did not produce it, so
  // a prompt never starts with two BOS tokens (llama-server strips a templated BOS before
  // adding its own; vLLM adds none and trusts the template; both give one BOS).
  std::vector<int32_t> ids = tok_.encode(text, /*add_special=*/false, /*parse_special=*/true);
  if (tok_.add_bos() && tok_.bos_id() >= 0 && (ids.empty() || ids[0] != tok_.bos_id()))
    ids.insert(ids.begin(), tok_.bos_id());
  if (ids.empty()) throw ApiError(400, "the chat template rendered an empty prompt", "messages");
  return ids;
}

std::vector<int32_t> PromptBuilder::completion_tokens(const PromptInput& p) const {
  if (p.is_ids) return p.ids;
  std::vector<int32_t> ids = tok_.encode(p.text, /*add_special=*/true, /*parse_special=*/true);
  if (ids.empty()) throw ApiError(400, "the prompt is empty", "prompt");
  return ids;
}

}  // namespace tessera
