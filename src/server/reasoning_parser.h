// Reasoning out of a model's output, incrementally: the thought of <think>...</think>
// models (Qwen3, QwQ, DeepSeek-R1 and its distills) goes to `reasoning_content`, the rest
// to `content`. Like ToolCallParser, it holds back what it cannot decide yet (a possible
// start of a marker, whitespace at the edges of the thought), so the result does not depend
// on how the text was cut into deltas.
//
// The output starts either in the answer, where a <think> block may open it (only as the
// first text after leading whitespace), or -- when the prompt itself opened the block, as
// DeepSeek-R1's template does -- inside the thought, which then runs to </think> (or to
// the end, when generation stops first). Whitespace around the thought and at the start
// of the answer after it is dropped (templates write it there; Qwen3's strips it when the
// message is sent back).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "server/message_delta.h"
#include "server/text_scan.h"

namespace tessera {

enum class ReasoningSyntax {
  NONE,   // [none] all output is content
  THINK,  // [deepseek_r1, qwen3] <think> ... </think>
};

// THINK when the template's source mentions </think>, else NONE.
ReasoningSyntax detect_reasoning_syntax(std::string_view template_source);
// --reasoning-parser: "auto" (detect), deepseek_r1, qwen3, none. Throws tessera::Error.
ReasoningSyntax reasoning_syntax_from_name(const std::string& name,
                                           std::string_view template_source);
// The text that ends the reasoning ("</think>"; "" for NONE): a constraint on the answer
// (a forced tool call, a response_format) starts after it when the output starts in
// reasoning, or may start with one.
const char* reasoning_end_marker(ReasoningSyntax s);
// Whether the rendered prompt ends inside an open <think> block (its last <think> is
// followed by whitespace only), so that generation starts in the thought.
bool prompt_opens_reasoning(std::string_view prompt);

class ReasoningParser {
 public:
  explicit ReasoningParser(bool starts_in_reasoning);

  // Appends REASONING and CONTENT deltas.
  void feed(std::string_view text, std::vector<MessageDelta>& out);
  void finish(std::vector<MessageDelta>& out);

 private:
  enum class State {
    START,    // the answer's leading whitespace; <think> may open a thought
    THOUGHT,  // inside <think>; whitespace is held until text follows it
    ANSWER,   // after the thought (its leading whitespace dropped) or without one
  };
  void run(std::vector<MessageDelta>& out);
  bool step(std::vector<MessageDelta>& out);

  TextScan scan_;
  size_t pos_ = 0;
  State state_;
  size_t ws_start_ = std::string::npos;  // held whitespace (START, THOUGHT)
  bool thought_started_ = false;         // THOUGHT: text written, so whitespace is kept
  bool drop_answer_ws_ = false;          // ANSWER right after a thought
};

}  // namespace tessera
