#include "server/reasoning_parser.h"

#include "core/error.h"

namespace tessera {

namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

}  // namespace

ReasoningSyntax detect_reasoning_syntax(std::string_view template_source) {
  return template_source.find(kClose) != std::string_view::npos ? ReasoningSyntax::THINK
                                                                : ReasoningSyntax::NONE;
}

ReasoningSyntax reasoning_syntax_from_name(const std::string& name,
                                           std::string_view template_source) {
  if (name.empty() || name == "auto") return detect_reasoning_syntax(template_source);
  if (name == "deepseek_r1" || name == "qwen3") return ReasoningSyntax::THINK;
  if (name == "none") return ReasoningSyntax::NONE;
  throw Error("unknown reasoning parser '" + name +
              "' (expected auto, deepseek_r1, qwen3 or none)");
}

const char* reasoning_end_marker(ReasoningSyntax s) {
  return s == ReasoningSyntax::THINK ? "</think>" : "";
}

bool prompt_opens_reasoning(std::string_view prompt) {
  const size_t open = prompt.rfind(kOpen);
  if (open == std::string_view::npos) return false;
  for (size_t p = open + kOpen.size(); p < prompt.size(); ++p)
    if (!is_json_space(prompt[p])) return false;
  return true;
}

ReasoningParser::ReasoningParser(bool starts_in_reasoning)
    : state_(starts_in_reasoning ? State::THOUGHT : State::START) {}

bool ReasoningParser::step(std::vector<MessageDelta>& out) {
  const char c = scan_.at(pos_);
  switch (state_) {
    case State::START: {
      if (is_json_space(c)) {
        if (ws_start_ == std::string::npos) ws_start_ = pos_;
        ++pos_;
        return true;
      }
      const TextScan::Match m = scan_.match(pos_, kOpen);
      if (m == TextScan::Match::PARTIAL) return false;
      if (m == TextScan::Match::FULL) {
        pos_ += kOpen.size();
        ws_start_ = std::string::npos;
        state_ = State::THOUGHT;
        return true;
      }
      if (ws_start_ != std::string::npos)
        push_text(out, MessageDelta::Kind::CONTENT, scan_.view(ws_start_, pos_));
      ws_start_ = std::string::npos;
      state_ = State::ANSWER;
      return true;
    }
    case State::THOUGHT: {
      const TextScan::Match close = scan_.match(pos_, kClose);
      const TextScan::Match open =
          thought_started_ ? TextScan::Match::NO : scan_.match(pos_, kOpen);
      if (close == TextScan::Match::PARTIAL || open == TextScan::Match::PARTIAL) return false;
      if (close == TextScan::Match::FULL) {
        pos_ += kClose.size();
        ws_start_ = std::string::npos;  // the thought's trailing whitespace
        state_ = State::ANSWER;
        drop_answer_ws_ = true;
        return true;
      }
      if (open == TextScan::Match::FULL) {  // the prompt opened the block and so did the model
        pos_ += kOpen.size();
        return true;
      }
      if (is_json_space(c)) {
        if (thought_started_ && ws_start_ == std::string::npos) ws_start_ = pos_;
        ++pos_;
        return true;
      }
      if (ws_start_ != std::string::npos)
        push_text(out, MessageDelta::Kind::REASONING, scan_.view(ws_start_, pos_));
      ws_start_ = std::string::npos;
      thought_started_ = true;
      push_text(out, MessageDelta::Kind::REASONING, std::string_view(&c, 1));
      ++pos_;
      return true;
    }
    case State::ANSWER:
      if (drop_answer_ws_) {
        if (is_json_space(c)) {
          ++pos_;
          return true;
        }
        drop_answer_ws_ = false;
      }
      push_text(out, MessageDelta::Kind::CONTENT, scan_.view(pos_, scan_.end()));
      pos_ = scan_.end();
      return true;
  }
  return true;
}

void ReasoningParser::run(std::vector<MessageDelta>& out) {
  while (pos_ < scan_.end() && step(out)) {
  }
  scan_.release(ws_start_ != std::string::npos ? ws_start_ : pos_);
}

void ReasoningParser::feed(std::string_view text, std::vector<MessageDelta>& out) {
  scan_.append(text);
  run(out);
}

void ReasoningParser::finish(std::vector<MessageDelta>& out) {
  scan_.set_final();
  run(out);
  // Whitespace-only output before any thought is the answer; a thought's trailing
  // whitespace is dropped.
  if (state_ == State::START && ws_start_ != std::string::npos)
    push_text(out, MessageDelta::Kind::CONTENT, scan_.view(ws_start_, scan_.end()));
  ws_start_ = std::string::npos;
}

}  // namespace tessera
