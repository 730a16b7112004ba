// A request's output constraint and forced tool calls -> one compiled grammar over the
// model's vocabulary, or none. Front ends: JSON Schema, json_object, regex, choice, GBNF,
// and the tool-call language of the chat template's family (tool_format.h). Compiled
// grammars are cached by their GBNF text (an LRU of kCacheSize), so the second request with
// a schema reuses the first one's grammar and its mask cache.
//
// Errors are the client's: ApiError(400) naming the request field, with the compiler's
// message (the keyword a schema uses that is not supported, the position in a regex or
// grammar).
#pragma once
#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/output_constraint.h"
#include "server/reasoning_parser.h"
#include "server/tool_format.h"

namespace tessera {

class Tokenizer;
namespace structured {
class CompiledGrammar;
class TokenVocab;
}  // namespace structured

// The GBNF text for a constraint ("" for NONE). Throws ApiError(400).
std::string constraint_gbnf(const OutputConstraint& c);
// The GBNF text of a ToolCallGrammarSpec: forced (no triggers): exactly the call language;
// lazy (triggers): free text that never contains a trigger, optionally followed by a
// sentence of the call language (which begins with a trigger). Throws ApiError(400) when a
// function's parameters schema cannot be compiled.
std::string tool_call_gbnf(const ToolCallGrammarSpec& spec);
// `gbnf` (rooted at `root`) preceded by a <think>...</think> thought: rules added to the
// text, the new start rule's name returned in `new_root`.
std::string with_reasoning_gbnf(const std::string& gbnf, bool starts_in_reasoning,
                                std::string& new_root);

class GrammarCompiler {
 public:
  explicit GrammarCompiler(const Tokenizer& tok) : tok_(tok) {}

  // The grammar for a request: its output constraint, else (with tools active) its tool
  // calls: forced for tool_choice required / named, lazy for auto when `lazy_tools`.
  // Null when nothing constrains the output. Thread safe.
  // With a reasoning syntax, the grammar applies to the answer only: a thought (free text
  // up to the end marker) comes first -- always when `starts_in_reasoning` (the prompt
  // opened it), else optionally, opened by the start marker.
  std::shared_ptr<const structured::CompiledGrammar> compile(
      const OutputConstraint& c, const ToolRequest& tools, ToolSyntax syntax,
      bool lazy_tools = false, ReasoningSyntax reasoning = ReasoningSyntax::NONE,
      bool starts_in_reasoning = false);
  // A GBNF text directly (with the special literals its vocabulary must spell), started at
  // rule `root`.
  std::shared_ptr<const structured::CompiledGrammar> compile_gbnf(
      const std::string& gbnf, const std::string& field,
      const std::vector<std::string>& special_literals = {}, const std::string& root = "root");

  struct Stats {
    int64_t compiled = 0, cache_hits = 0;
    double compile_seconds = 0.0;  // parse + mask precomputation, all compiles
    double last_compile_seconds = 0.0;
  };
  Stats stats() const;

  static constexpr size_t kCacheSize = 64;

 private:
  std::shared_ptr<const structured::TokenVocab> vocab(const std::vector<std::string>& specials);

  const Tokenizer& tok_;
  mutable std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<const structured::CompiledGrammar>>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> index_;
  std::map<std::vector<std::string>, std::shared_ptr<const structured::TokenVocab>> vocabs_;
  Stats stats_;
};

}  // namespace tessera
