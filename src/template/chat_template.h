// Chat templates: the Jinja source a model ships as `tokenizer.chat_template` (GGUF metadata
// or tokenizer_config.json), rendered byte-for-byte as Hugging Face transformers renders it
// with Python's jinja2 (trim_blocks, lstrip_blocks, loop controls, `{% generation %}`, the
// tojson filter without HTML escaping, and the raise_exception / strftime_now globals).
//
// Thread safety: a ChatTemplate is immutable after construction; render() may run
// concurrently from several threads.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace tessera {

namespace jinja {
struct Stmt;
}

class ChatTemplate {
 public:
  // Parses `source`; throws tessera::Error("chat template syntax error (line N): ...").
  explicit ChatTemplate(std::string source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // ctx: {"messages": [...], "add_generation_prompt": bool, "bos_token": "...",
  //       "eos_token": "...", optional "tools", "documents", "enable_thinking", ...}.
  // As in transformers, "tools" and "documents" are None when absent.
  // Throws tessera::Error: for the template's raise_exception(msg) the message is exactly
  // msg; other runtime errors read "chat template error (line N): ...".
  //
  // Prefer the ordered_json overload when objects reach a tojson filter (tool schemas): it
  // keeps the client's key order, as Python dicts do; nlohmann::json sorts keys.
  std::string render(const nlohmann::json& ctx) const;
  std::string render(const nlohmann::ordered_json& ctx) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> program_;
};

}  // namespace tessera
