// How a model family writes tool calls, as plain data: which syntax a chat template
// teaches its model (detected from the template's source), and the structural description
// of a call the grammar compiler turns into a grammar to force calls (tool_choice
// required / a named function) or to hold the model to the syntax once it starts one
// (tool_choice auto, lazily).
//
// Depends on nothing but nlohmann::json: the grammar library compiles a ToolCallGrammarSpec
// without knowing about requests or templates.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "server/output_constraint.h"

namespace tessera {

// The call syntaxes Tessera parses (--tool-call-parser names in brackets).
enum class ToolSyntax {
  HERMES,       // [hermes] Hermes 2 Pro / 3, Qwen2.5, Qwen3, QwQ:
                //   <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>, repeated
  LLAMA3_JSON,  // [llama3_json] Llama 3.1 / 3.2 / 3.3: the whole answer is
                //   {"name": "f", "parameters": {...}}, optionally after <|python_tag|>;
                //   more calls separated by ";"
  MISTRAL,  // [mistral] Mistral 7B v0.3, Nemo: [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]
  MISTRAL_ARGS,  // [mistral] newer Mistral templates (Small 3.2, Devstral, Magistral):
                 //   [TOOL_CALLS]f[ARGS]{...}, repeated; [CALL_ID]id before [ARGS] accepted
  GENERIC,       // [generic] any other template: the whole answer is a call object
                 //   {"name": "f", "arguments": {...}}, or an array of them
};

// The syntax a chat template's source teaches ([TOOL_CALLS] with [ARGS], [TOOL_CALLS],
// <tool_call>, <|python_tag|> or an ipython role, else GENERIC).
ToolSyntax detect_tool_syntax(std::string_view template_source);
// --tool-call-parser: "auto" (detect), hermes, llama3_json, mistral (whose form the
// template decides), generic. Throws tessera::Error naming the choices.
ToolSyntax tool_syntax_from_name(const std::string& name, std::string_view template_source);
const char* tool_syntax_name(ToolSyntax s);

// One way to write one call: literal `begin`, a JSON value matching `schema`, literal `end`.
struct ToolCallShape {
  std::string begin;
  nlohmann::ordered_json schema;
  std::string end;
};

// The language of tool calls for one request:
//
//   list_begin  shape  ( separator  shape )*  list_end      (the repetition only if repeat)
//
// where each `shape` is any one of `shapes`. JSON-object syntaxes have one shape whose schema
// is the call object: {"name": {"const": f}, <args field>: f's parameters schema}, with
// "name" first and required, no other properties, as an anyOf over the callable functions
// (one function: its schema alone). MISTRAL_ARGS has one shape per function (the name is
// literal text).
//
// Forced (tool_choice required / named: `triggers` empty): the output is exactly one
// sentence of this language; the model ends after it (end-of-generation token allowed only
// in the accepting state).
// Lazy (tool_choice auto: `triggers` non-empty): the model writes freely until one of the
// triggers appears in its output (with `trigger_at_start`, only as the first text after
// leading whitespace); from the trigger's first byte on, the output must be a sentence of
// the language (every trigger is a prefix of some sentence).
//
// With a reasoning parser the constraint applies to the answer only: after the reasoning
// block closes (ReasoningSyntax's end marker), or from the first token when the prompt
// closed it.
//
// `special_literals`: literal texts (in list_begin, separator, list_end, shapes' begin/end
// and triggers) that the family's vocabularies hold as one token, often a special one
// ("[TOOL_CALLS]" in Mistral's): the mask must allow that token where the literal is
// expected, although its text is hidden unless special tokens are rendered.
struct ToolCallGrammarSpec {
  std::vector<std::string> triggers;
  bool trigger_at_start = false;
  std::string list_begin;
  std::vector<ToolCallShape> shapes;
  bool repeat = false;
  std::string separator;
  std::string list_end;
  std::vector<std::string> special_literals;
};

// The description for `tools` (callable(): all functions, or the named one) in `syntax`.
// `tools.choice` AUTO gives the lazy form, REQUIRED / NAMED the forced one; NONE (or no
// tools) is a caller error (Error). repeat = tools.parallel, except for LLAMA3_JSON (its
// templates render one call per turn) and NAMED (exactly one call).
ToolCallGrammarSpec tool_call_grammar_spec(ToolSyntax syntax, const ToolRequest& tools);

}  // namespace tessera
