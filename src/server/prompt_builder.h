// Request prompts -> token ids: chat messages through the model's chat template, raw
// completion prompts through the tokenizer. Failures are the client's (400), never a
// silent fallback to some other format.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/openai_request.h"

namespace tessera {

class ChatTemplate;
class Model;
class Tokenizer;

class PromptBuilder {
 public:
  // Parses `chat_template` when given (a --chat-template override), else the model's
  // `tokenizer.chat_template`. A template that does not parse is remembered and reported
  // on each chat request.
  explicit PromptBuilder(const Model& model, const std::string& chat_template = "");
  ~PromptBuilder();

  bool has_chat_template() const { return tmpl_ != nullptr; }
  const std::string& template_error() const { return tmpl_error_; }

  // The rendered chat prompt, then its tokens. Throws ApiError(400) when the model has no
  // template or rendering fails (with the template's message). `add_generation_prompt`:
  // end with the header of an assistant turn (off to continue or score a conversation).
  std::string render_chat(const nlohmann::json& messages, bool add_generation_prompt = true) const;
  std::vector<int32_t> chat_tokens(const nlohmann::json& messages,
                                   bool add_generation_prompt = true) const;
  // The tokens of a rendered chat prompt (as chat_tokens does after rendering).
  std::vector<int32_t> chat_text_tokens(const std::string& text) const;
  // A completions prompt: text gets the model's BOS/EOS as its metadata asks; ids are the
  // client's, unchanged.
  std::vector<int32_t> completion_tokens(const PromptInput& p) const;

 private:
  const Tokenizer& tok_;
  std::unique_ptr<ChatTemplate> tmpl_;
  std::string tmpl_error_;
  std::string bos_text_, eos_text_;
};

}  // namespace tessera
