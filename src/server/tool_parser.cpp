#include "server/tool_parser.h"

#include <nlohmann/json.hpp>
#include <random>

#include "server/text_scan.h"

namespace tessera {

std::string new_tool_call_id(ToolSyntax syntax) {
  static const char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const bool mistral = syntax == ToolSyntax::MISTRAL || syntax == ToolSyntax::MISTRAL_ARGS;
  std::string id = mistral ? "" : "call_";
  for (int i = 0; i < (mistral ? 9 : 24); ++i) id += kAlnum[rng() % (sizeof kAlnum - 1)];
  return id;
}

namespace {

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kMistralCalls = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";
constexpr std::string_view kMistralCallId = "[CALL_ID]";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr size_t kMaxNameBytes = 256;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == ':';
}

}  // namespace

struct ToolCallParser::Impl {
  // Where the parser is in the text. Call objects are parsed by the OBJECT state's own
  // phases (ObjPhase); the other states sit between calls.
  enum class State {
    CONTENT,       // free text; a call marker starts a call (HERMES, MISTRAL*)
    START,         // JSON-first syntaxes: leading whitespace, then a call or plain text
    TEXT_ONLY,     // JSON-first syntaxes: text to the end, no more calls
    PY_TAG,        // after <|python_tag|>: whitespace, then a call object
    OBJECT,        // inside a call object
    AFTER_OBJECT,  // a call object ended
    NEXT_OBJECT,   // LLAMA3_JSON / GENERIC after ";": whitespace, then the next call object
    ARRAY_NEXT,    // inside [...]: whitespace, then a call object (or "]")
    MISTRAL_OPEN,  // after [TOOL_CALLS]: "[" (array form) or a function name
    MISTRAL_NAME,  // the name before [ARGS] (or [CALL_ID])
    MISTRAL_ID,    // the id between [CALL_ID] and [ARGS]
    ARGS_VALUE,    // the JSON value after [ARGS]
    SKIP,          // the rest of a broken call, up to the syntax's next marker
  };
  enum class ObjPhase { OPEN, KEY_OR_CLOSE, KEY, COLON, VALUE_START, VALUE, AFTER_VALUE, NEXT_KEY };
  enum class KeyKind { NAME, ARGS, OTHER };
  enum class Push { MORE, DONE, ERROR };

  ToolSyntax syntax;
  std::function<std::string()> new_id;
  TextScan scan;
  std::vector<MessageDelta>* out = nullptr;
  size_t pos = 0;
  State state;

  // Content: a pending run of whitespace (npos: none) is written with the next text, or
  // dropped when a call follows; after a call, leading whitespace is dropped.
  size_t ws_start = std::string::npos;
  bool after_call = false;

  // A call not yet begun (tentative): its text from tent_start is still held. Should it
  // fail, [tent_start, tent_resume) becomes content and scanning resumes at tent_resume
  // in tent_fallback.
  bool tentative = false;
  size_t tent_start = 0, tent_resume = 0;
  State tent_fallback = State::CONTENT;
  bool tent_after_call = false;

  // The call being parsed.
  bool in_call = false;  // begun: its start has been emitted
  bool in_array = false;
  int n_calls = 0;
  bool args_emitted = false;
  std::string pending_args;  // arguments seen before the call could begin
  std::string name;
  bool have_name = false, args_seen = false;
  std::string name_buf;  // MISTRAL_NAME
  size_t id_len = 0;     // MISTRAL_ID

  // Call object phases.
  ObjPhase phase = ObjPhase::OPEN;
  KeyKind key_kind = KeyKind::OTHER;
  std::string key_raw, name_raw;
  bool key_escape = false;
  JsonValueScanner value;

  Impl(ToolSyntax s, std::function<std::string()> ids) : syntax(s), new_id(std::move(ids)) {
    if (!new_id) new_id = [s] { return new_tool_call_id(s); };
    state = json_first() ? State::START : State::CONTENT;
  }

  bool json_first() const {
    return syntax == ToolSyntax::LLAMA3_JSON || syntax == ToolSyntax::GENERIC;
  }
  bool mistral() const {
    return syntax == ToolSyntax::MISTRAL || syntax == ToolSyntax::MISTRAL_ARGS;
  }
  std::string_view call_marker() const { return mistral() ? kMistralCalls : kHermesOpen; }
  // JSON-first syntaxes begin a call once its arguments have begun as well.
  bool can_begin() const { return have_name && (args_seen || !json_first()); }

  // ---- output

  void content_at(size_t p) {
    const char c = scan.at(p);
    if (is_json_space(c)) {
      if (ws_start == std::string::npos) ws_start = p;
      return;
    }
    if (ws_start != std::string::npos) {
      if (!after_call) push_text(*out, MessageDelta::Kind::CONTENT, scan.view(ws_start, p));
      ws_start = std::string::npos;
    }
    after_call = false;
    push_text(*out, MessageDelta::Kind::CONTENT, std::string_view(&c, 1));
  }

  void emit_args(std::string_view s) {
    if (s.empty()) return;
    push_text(*out, MessageDelta::Kind::TOOL_CALL_ARGS, s, n_calls - 1);
    args_emitted = true;
  }

  void args_text(std::string_view s) {
    if (in_call)
      emit_args(s);
    else
      pending_args.append(s);
  }

  // ---- call lifecycle

  void reset_call() {
    name.clear();
    name_raw.clear();
    name_buf.clear();
    pending_args.clear();
    have_name = args_seen = false;
    id_len = 0;
  }

  void begin_tentative(size_t resume, State fallback) {
    tentative = true;
    tent_start = ws_start != std::string::npos ? ws_start : pos;
    tent_resume = resume;
    tent_fallback = fallback;
    tent_after_call = after_call;
    ws_start = std::string::npos;
    reset_call();
  }

  void begin_call() {
    tentative = false;
    in_call = true;
    args_emitted = false;
    MessageDelta d;
    d.kind = MessageDelta::Kind::TOOL_CALL_BEGIN;
    d.index = n_calls++;
    d.id = new_id();
    d.name = name;
    out->push_back(std::move(d));
    emit_args(pending_args);
    pending_args.clear();
  }

  void end_call() {
    if (!in_call) return;
    if (!args_emitted) emit_args("{}");
    in_call = false;
    after_call = true;
    ws_start = std::string::npos;
    reset_call();
  }

  // The text since tent_start was not a call: it is content, and scanning goes on after
  // the marker that started it.
  void fall_back() {
    tentative = false;
    in_array = false;
    after_call = tent_after_call;
    ws_start = std::string::npos;
    const size_t resume = tent_resume;
    const State next = tent_fallback;
    for (size_t p = tent_start; p < resume; ++p) content_at(p);
    pos = resume;
    state = next;
    reset_call();
  }

  // A call went wrong: before it began it was text; after, its rest is skipped.
  void fail() {
    if (in_call) {
      end_call();
      state = State::SKIP;
    } else {
      fall_back();
    }
  }

  // ---- call objects

  void start_object() {
    phase = ObjPhase::OPEN;
    key_raw.clear();
    key_escape = false;
    state = State::OBJECT;
  }

  void start_value() {
    value.reset();
    if (key_kind == KeyKind::NAME) name_raw.clear();
    if (key_kind == KeyKind::ARGS) args_seen = true;
    phase = ObjPhase::VALUE;
  }

  void end_value() {
    if (key_kind == KeyKind::NAME) {
      try {
        name = nlohmann::json::parse(name_raw).get<std::string>();
      } catch (const std::exception&) {
        name.clear();
      }
      have_name = !name.empty();
    }
    phase = ObjPhase::AFTER_VALUE;
  }

  Push push_object(char c) {
    switch (phase) {
      case ObjPhase::OPEN:
        if (is_json_space(c)) return Push::MORE;
        if (c != '{') return Push::ERROR;
        phase = ObjPhase::KEY_OR_CLOSE;
        return Push::MORE;
      case ObjPhase::KEY_OR_CLOSE:
      case ObjPhase::NEXT_KEY:
        if (is_json_space(c)) return Push::MORE;
        if (c == '}' && phase == ObjPhase::KEY_OR_CLOSE) return Push::DONE;
        if (c != '"') return Push::ERROR;
        key_raw = "\"";
        key_escape = false;
        phase = ObjPhase::KEY;
        return Push::MORE;
      case ObjPhase::KEY:
        key_raw += c;
        if (key_escape) {
          key_escape = false;
        } else if (c == '\\') {
          key_escape = true;
        } else if (c == '"') {
          std::string key;
          try {
            key = nlohmann::json::parse(key_raw).get<std::string>();
          } catch (const std::exception&) {
            return Push::ERROR;
          }
          if (key == "name" && !have_name && name_raw.empty())
            key_kind = KeyKind::NAME;
          else if ((key == "arguments" || key == "parameters") && !args_seen)
            key_kind = KeyKind::ARGS;
          else
            key_kind = KeyKind::OTHER;
          phase = ObjPhase::COLON;
        }
        return Push::MORE;
      case ObjPhase::COLON:
        if (is_json_space(c)) return Push::MORE;
        if (c != ':') return Push::ERROR;
        phase = ObjPhase::VALUE_START;
        return Push::MORE;
      case ObjPhase::VALUE_START:
        if (is_json_space(c)) return Push::MORE;
        if (key_kind == KeyKind::NAME && c != '"') return Push::ERROR;
        start_value();
        [[fallthrough]];
      case ObjPhase::VALUE: {
        const JsonValueScanner::Result r = value.push(c);
        if (r == JsonValueScanner::Result::ERROR) return Push::ERROR;
        if (r == JsonValueScanner::Result::DONE_BEFORE) {
          end_value();
          return push_object(c);  // the byte after a number or literal
        }
        if (key_kind == KeyKind::NAME) name_raw += c;
        if (key_kind == KeyKind::ARGS) args_text(std::string_view(&c, 1));
        if (r == JsonValueScanner::Result::DONE) end_value();
        return Push::MORE;
      }
      case ObjPhase::AFTER_VALUE:
        if (is_json_space(c)) return Push::MORE;
        if (c == ',') {
          phase = ObjPhase::NEXT_KEY;
          return Push::MORE;
        }
        if (c == '}') return Push::DONE;
        return Push::ERROR;
    }
    return Push::ERROR;
  }

  // ---- the scan

  // One step at `pos`; false when the text ends before the next decision can be made.
  bool step() {
    const char c = scan.at(pos);
    switch (state) {
      case State::CONTENT:
        switch (scan.match(pos, call_marker())) {
          case TextScan::Match::PARTIAL:
            return false;
          case TextScan::Match::FULL:
            begin_tentative(pos + call_marker().size(), State::CONTENT);
            pos += call_marker().size();
            if (mistral()) {
              state = State::MISTRAL_OPEN;
            } else {
              start_object();
            }
            return true;
          case TextScan::Match::NO:
            content_at(pos++);
            return true;
        }
        return true;

      case State::START:
        if (is_json_space(c)) {
          content_at(pos++);
          return true;
        }
        if (syntax == ToolSyntax::LLAMA3_JSON) {
          const TextScan::Match m = scan.match(pos, kPythonTag);
          if (m == TextScan::Match::PARTIAL) return false;
          if (m == TextScan::Match::FULL) {
            begin_tentative(pos + kPythonTag.size(), State::TEXT_ONLY);
            pos += kPythonTag.size();
            state = State::PY_TAG;
            return true;
          }
        }
        if (c == '{') {
          begin_tentative(pos, State::TEXT_ONLY);
          start_object();
        } else if (c == '[' && syntax == ToolSyntax::GENERIC) {
          begin_tentative(pos, State::TEXT_ONLY);
          ++pos;
          in_array = true;
          state = State::ARRAY_NEXT;
        } else {
          state = State::TEXT_ONLY;
        }
        return true;

      case State::TEXT_ONLY:
        content_at(pos++);
        return true;

      case State::PY_TAG:
        if (is_json_space(c)) {
          ++pos;
        } else if (c == '{') {
          start_object();
        } else {
          fail();
        }
        return true;

      case State::OBJECT: {
        const Push r = push_object(c);
        ++pos;
        if (r == Push::ERROR) {
          fail();
          return true;
        }
        if (!in_call && can_begin()) begin_call();
        if (r == Push::DONE) {
          if (!in_call) {
            fail();  // no name (or, JSON-first, no arguments): not a call
            return true;
          }
          end_call();
          state = State::AFTER_OBJECT;
        }
        return true;
      }

      case State::AFTER_OBJECT:
        if (is_json_space(c)) {
          ++pos;
          return true;
        }
        if (in_array) {
          if (c == ',') {
            ++pos;
            state = State::ARRAY_NEXT;
          } else if (c == ']') {
            ++pos;
            in_array = false;
            state = mistral() ? State::CONTENT : State::TEXT_ONLY;
          } else {
            state = State::SKIP;
          }
          return true;
        }
        if (syntax == ToolSyntax::HERMES) {
          const TextScan::Match close = scan.match(pos, kHermesClose);
          const TextScan::Match open = scan.match(pos, kHermesOpen);
          if (close == TextScan::Match::PARTIAL || open == TextScan::Match::PARTIAL) return false;
          if (close == TextScan::Match::FULL) {
            pos += kHermesClose.size();
            state = State::CONTENT;
          } else {
            state = open == TextScan::Match::FULL ? State::CONTENT : State::SKIP;
          }
          return true;
        }
        if (json_first() && c == ';') {
          ++pos;
          state = State::NEXT_OBJECT;
          return true;
        }
        state = json_first() ? State::TEXT_ONLY : State::CONTENT;
        return true;

      case State::NEXT_OBJECT:
        if (is_json_space(c)) {
          ++pos;
        } else if (c == '{') {
          begin_tentative(pos, State::TEXT_ONLY);
          start_object();
        } else {
          state = State::TEXT_ONLY;
        }
        return true;

      case State::ARRAY_NEXT:
        if (is_json_space(c)) {
          ++pos;
        } else if (c == '{') {
          if (!tentative) begin_tentative(pos, mistral() ? State::CONTENT : State::TEXT_ONLY);
          start_object();
        } else if (c == ']' && !tentative) {
          ++pos;
          in_array = false;
          state = mistral() ? State::CONTENT : State::TEXT_ONLY;
        } else {
          fail();
        }
        return true;

      case State::MISTRAL_OPEN:
        if (is_json_space(c)) {
          ++pos;
        } else if (c == '[') {
          ++pos;
          in_array = true;
          state = State::ARRAY_NEXT;
        } else {
          state = State::MISTRAL_NAME;
        }
        return true;

      case State::MISTRAL_NAME:
      case State::MISTRAL_ID: {
        const TextScan::Match args = scan.match(pos, kMistralArgs);
        const TextScan::Match id = scan.match(pos, kMistralCallId);
        if (args == TextScan::Match::PARTIAL || id == TextScan::Match::PARTIAL) return false;
        if (args == TextScan::Match::FULL) {
          if (name_buf.empty()) {
            fail();
            return true;
          }
          pos += kMistralArgs.size();
          name = name_buf;
          have_name = true;
          begin_call();
          value.reset();
          state = State::ARGS_VALUE;
        } else if (id == TextScan::Match::FULL && state == State::MISTRAL_NAME &&
                   !name_buf.empty()) {
          pos += kMistralCallId.size();
          state = State::MISTRAL_ID;
        } else if (state == State::MISTRAL_NAME && is_name_char(c) &&
                   name_buf.size() < kMaxNameBytes) {
          name_buf += c;
          ++pos;
        } else if (state == State::MISTRAL_ID && is_name_char(c) && id_len < kMaxNameBytes) {
          ++id_len;
          ++pos;
        } else {
          fail();
        }
        return true;
      }

      case State::ARGS_VALUE: {
        if (!value.started() && is_json_space(c)) {
          ++pos;
          return true;
        }
        const JsonValueScanner::Result r = value.push(c);
        if (r == JsonValueScanner::Result::ERROR) {
          fail();
          return true;
        }
        if (r == JsonValueScanner::Result::DONE_BEFORE) {
          end_call();
          state = State::CONTENT;
          return true;
        }
        emit_args(std::string_view(&c, 1));
        ++pos;
        if (r == JsonValueScanner::Result::DONE) {
          end_call();
          state = State::CONTENT;
        }
        return true;
      }

      case State::SKIP:
        if (syntax == ToolSyntax::HERMES) {
          const TextScan::Match m = scan.match(pos, kHermesClose);
          if (m == TextScan::Match::PARTIAL) return false;
          if (m == TextScan::Match::FULL) {
            pos += kHermesClose.size();
            state = State::CONTENT;
            return true;
          }
        } else if (mistral()) {
          const TextScan::Match m = scan.match(pos, kMistralCalls);
          if (m == TextScan::Match::PARTIAL) return false;
          if (m == TextScan::Match::FULL) {
            in_array = false;
            state = State::CONTENT;
            return true;
          }
        }
        ++pos;
        return true;
    }
    return true;
  }

  void run() {
    while (pos < scan.end() && step()) {
    }
    // Keep only what a later decision may still need.
    size_t keep = pos;
    if (tentative) keep = std::min(keep, tent_start);
    if (ws_start != std::string::npos) keep = std::min(keep, ws_start);
    scan.release(keep);
  }

  void finish() {
    scan.set_final();
    run();
    while (tentative) {  // a call that never began is text; what follows it is scanned again
      fall_back();
      run();
    }
    end_call();
    if (ws_start != std::string::npos && !after_call)
      push_text(*out, MessageDelta::Kind::CONTENT, scan.view(ws_start, scan.end()));
    ws_start = std::string::npos;
  }
};

ToolCallParser::ToolCallParser(ToolSyntax syntax, std::function<std::string()> new_id)
    : impl_(std::make_unique<Impl>(syntax, std::move(new_id))) {}
ToolCallParser::~ToolCallParser() = default;
ToolCallParser::ToolCallParser(ToolCallParser&&) noexcept = default;
ToolCallParser& ToolCallParser::operator=(ToolCallParser&&) noexcept = default;

void ToolCallParser::feed(std::string_view text, std::vector<MessageDelta>& out) {
  impl_->out = &out;
  impl_->scan.append(text);
  impl_->run();
}

void ToolCallParser::finish(std::vector<MessageDelta>& out) {
  impl_->out = &out;
  impl_->finish();
}

int ToolCallParser::n_calls() const {
  return impl_->n_calls;
}

}  // namespace tessera
