// Tool calls out of a model's answer text, incrementally: text deltas in, MessageDeltas out
// (answer text, then for each call its start -- index, id, name -- and its arguments in
// fragments, the order OpenAI streams them in). A complete text is parsed by feeding it
// whole and calling finish(); the result is the same however the text was cut into
// deltas, because the parser holds back whatever it cannot yet decide (a possible start of
// a call marker, whitespace next to a call, a call whose name is not known yet).
//
// What counts as a call (see ToolSyntax for the shapes):
//   - HERMES: each <tool_call> {object} </tool_call> anywhere in the text;
//   - MISTRAL / MISTRAL_ARGS: [TOOL_CALLS] followed by a JSON array of call objects or by
//     name[ARGS]{arguments} (either form is accepted whichever the template teaches);
//   - LLAMA3_JSON: a call object as the first thing in the answer (after <|python_tag|>
//     optionally), more after ";"; GENERIC: a call object or an array of them, first.
// A call object has "name" (a string) and "arguments" or "parameters" (any JSON value,
// kept as the model wrote it: `arguments` is that value's exact text; "{}" when absent);
// other keys are ignored. A call begins once its name is known (JSON-first syntaxes: once
// its arguments have begun too, so an ordinary JSON answer is never taken for a call).
// Text that turns out not to be a call (a marker followed by something else) is content,
// unchanged. Whitespace next to a call is dropped (templates write it around calls).
// After a call has begun nothing of it is taken back: a broken remainder is skipped to
// the syntax's next marker, and arguments cut off by the end of generation stay cut.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/message_delta.h"
#include "server/tool_format.h"

namespace tessera {

// Call ids: "call_" + 24 random alphanumerics; MISTRAL*: 9 alphanumerics (what Mistral
// templates require of the ids they are given back).
std::string new_tool_call_id(ToolSyntax syntax);

class ToolCallParser {
 public:
  // `new_id` makes each call's id (default: new_tool_call_id(syntax)).
  explicit ToolCallParser(ToolSyntax syntax, std::function<std::string()> new_id = {});
  ~ToolCallParser();
  ToolCallParser(ToolCallParser&&) noexcept;
  ToolCallParser& operator=(ToolCallParser&&) noexcept;

  void feed(std::string_view text, std::vector<MessageDelta>& out);
  // End of the text: what was held back is decided.
  void finish(std::vector<MessageDelta>& out);
  int n_calls() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
