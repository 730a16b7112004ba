#include "server/openai_request.h"

#include <cmath>
#include <limits>

#include "server/api_error.h"
#include "server/chat_messages.h"
#include "server/request_constraints.h"
#include "server/request_fields.h"

namespace tessera {

using namespace request_fields;

namespace {

double get_number(const json& body, const char* name, double def, double lo, double hi,
                  bool lo_open = false) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number()) bad(name, std::string("'") + name + "' must be a number");
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "'%s' must be in %c%g, %g], got %g", name, lo_open ? '(' : '[',
                  lo, hi, x);
    bad(name, buf);
  }
  return x;
}

int64_t get_int(const json& body, const char* name, int64_t def, int64_t lo, int64_t hi) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number_integer()) bad(name, std::string("'") + name + "' must be an integer");
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
    bad(name, std::string("'") + name + "' must be at most " + std::to_string(hi));
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi)
    bad(name, std::string("'") + name + "' must be in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "], got " + std::to_string(x));
  return x;
}

std::vector<int32_t> token_ids(const json& arr, const char* param, int n_vocab) {
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (const json& t : arr) {
    if (!t.is_number_integer()) bad(param, "token ids must be integers");
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= n_vocab)
      bad(param, "token id " + std::to_string(id) + " is out of range [0, " +
                     std::to_string(n_vocab) + ")");
    ids.push_back(static_cast<int32_t>(id));
  }
  if (ids.empty()) bad(param, "a token id prompt must not be empty");
  return ids;
}

// Fields /v1/chat/completions and /v1/completions share.
void parse_common(const json& body, int n_vocab, CompletionRequest& r) {
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad("model", "'model' must be a string");
    r.model = m->get<std::string>();
  }
  // max_completion_tokens supersedes max_tokens (OpenAI deprecated the latter for chat).
  const int64_t int_max = std::numeric_limits<int32_t>::max();
  r.max_tokens = static_cast<int>(get_int(body, "max_tokens", 0, 1, int_max));
  r.max_tokens = static_cast<int>(get_int(body, "max_completion_tokens", r.max_tokens, 1, int_max));
  r.n = static_cast<int>(get_int(body, "n", 1, 1, kMaxChoices));
  r.stream = get_bool(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
    if (!r.stream) bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
    r.include_usage = get_bool(*so, "include_usage", false);
  }

  if (const json* s = field(body, "stop")) {
    if (s->is_string()) {
      r.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      for (const json& x : *s) {
        if (!x.is_string()) bad("stop", "'stop' must be a string or an array of strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "'stop' must be a string or an array of strings");
    }
  }

  // Defaults are OpenAI's / vLLM's: plain sampling at temperature 1, nothing truncated.
  SamplingParams& sp = r.gen.sampling;
  sp.temperature = static_cast<float>(get_number(body, "temperature", 1.0, 0.0, 2.0));
  sp.top_p = static_cast<float>(get_number(body, "top_p", 1.0, 0.0, 1.0, /*lo_open=*/true));
  const int64_t top_k = get_int(body, "top_k", 0, -1, std::numeric_limits<int32_t>::max());
  sp.top_k = top_k < 0 ? 0 : static_cast<int>(top_k);  // -1 (vLLM) and 0 both mean off
  sp.min_p = static_cast<float>(get_number(body, "min_p", 0.0, 0.0, 1.0));
  sp.presence_penalty = static_cast<float>(get_number(body, "presence_penalty", 0.0, -2.0, 2.0));
  sp.frequency_penalty = static_cast<float>(get_number(body, "frequency_penalty", 0.0, -2.0, 2.0));
  sp.repetition_penalty =
      static_cast<float>(get_number(body, "repetition_penalty", 1.0, 0.0, 10.0, true));
  if (const json* s = field(body, "seed")) {
    if (!s->is_number_integer()) bad("seed", "'seed' must be an integer");
    sp.seed =
        s->is_number_unsigned() ? s->get<uint64_t>() : static_cast<uint64_t>(s->get<int64_t>());
    sp.has_seed = true;
  }
  if (const json* lb = field(body, "logit_bias")) {
    if (!lb->is_object()) bad("logit_bias", "'logit_bias' must be an object {token id: bias}");
    for (const auto& [key, val] : lb->items()) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || id < 0 || id >= n_vocab)
        bad("logit_bias", "logit_bias key '" + key + "' is not a token id in [0, " +
                              std::to_string(n_vocab) + ")");
      if (!val.is_number()) bad("logit_bias", "logit_bias values must be numbers");
      const double b = val.get<double>();
      if (!(b >= -100.0 && b <= 100.0))
        bad("logit_bias", "logit_bias values must be in [-100, 100]");
      sp.logit_bias[static_cast<int32_t>(id)] = static_cast<float>(b);
    }
  }
  if (const json* st = field(body, "stop_token_ids")) {
    if (!st->is_array()) bad("stop_token_ids", "'stop_token_ids' must be an array of token ids");
    if (!st->empty()) r.gen.stop_token_ids = token_ids(*st, "stop_token_ids", n_vocab);
  }
  r.gen.ignore_eos = get_bool(body, "ignore_eos", false);
}

}  // namespace

json parse_request_body(const std::string& text) {
  // The parser is iterative; the depth check stops it before a too-deep value is built.
  const json::parser_callback_t limit = [](int depth, json::parse_event_t, json&) {
    if (depth >= kMaxJsonDepth)  // depth: the containers around this event
      throw ApiError(400, "the request body nests JSON deeper than " +
                              std::to_string(kMaxJsonDepth) + " levels");
    return true;
  };
  try {
    return json::parse(text, limit);
  } catch (const json::parse_error& e) {
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what());
  } catch (const json::out_of_range& e) {
    // A number too large for a double (1e400): nlohmann refuses it while parsing.
    throw ApiError(400, std::string("the request body holds a number out of range: ") + e.what());
  }
}

CompletionRequest parse_chat_request(const json& body, int n_vocab) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  CompletionRequest r;
  r.chat = true;
  parse_common(body, n_vocab, r);

  const json* msgs = field(body, "messages");
  if (!msgs) bad("messages", "'messages' is required");
  r.messages = parse_chat_messages(*msgs);
  parse_template_fields(body, r);
  r.tools = parse_tool_request(body);
  r.constraint = parse_output_constraint(body);
  check_tools_vs_constraint(r.tools, r.constraint);

  // Chat logprobs: a boolean, plus top_logprobs alternatives per position.
  r.logprobs = get_bool(body, "logprobs", false);
  r.top_logprobs = static_cast<int>(get_int(body, "top_logprobs", 0, 0, kMaxTopLogprobs));
  if (field(body, "top_logprobs") && !r.logprobs)
    bad("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
  r.gen.logprobs = r.logprobs ? r.top_logprobs : -1;
  return r;
}

CompletionRequest parse_completion_options(const json& body, int n_vocab) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  CompletionRequest r;
  parse_common(body, n_vocab, r);
  // Completions logprobs: an integer, the number of alternatives per position.
  if (const json* lp = field(body, "logprobs")) {
    if (lp->is_boolean()) bad("logprobs", "'logprobs' must be an integer for completions");
    r.top_logprobs = static_cast<int>(get_int(body, "logprobs", 0, 0, kMaxTopLogprobs));
    r.logprobs = true;
  }
  r.gen.logprobs = r.logprobs ? r.top_logprobs : -1;
  return r;
}

CompletionRequest parse_completion_request(const json& body, int n_vocab) {
  CompletionRequest r = parse_completion_options(body, n_vocab);

  const json* p = field(body, "prompt");
  if (!p) bad("prompt", "'prompt' is required");
  auto text_prompt = [&](const json& s) {
    PromptInput in;
    in.text = s.get<std::string>();
    r.prompts.push_back(std::move(in));
  };
  auto ids_prompt = [&](const json& a) {
    PromptInput in;
    in.is_ids = true;
    in.ids = token_ids(a, "prompt", n_vocab);
    r.prompts.push_back(std::move(in));
  };
  const char* kShape =
      "'prompt' must be a string, an array of strings, an array of token ids or an array of "
      "token id arrays";
  if (p->is_string()) {
    text_prompt(*p);
  } else if (p->is_array() && !p->empty()) {
    const json& first = (*p)[0];
    if (first.is_number_integer()) {
      ids_prompt(*p);
    } else {
      for (const json& x : *p) {
        if (x.is_string())
          text_prompt(x);
        else if (x.is_array())
          ids_prompt(x);
        else
          bad("prompt", kShape);
      }
    }
  } else {
    bad("prompt", kShape);
  }
  if (get_bool(body, "echo", false)) bad("echo", "'echo' is not supported");
  const json* suffix = field(body, "suffix");
  if (suffix && !(suffix->is_string() && suffix->get<std::string>().empty()))
    bad("suffix", "'suffix' is not supported");

  for (const char* chat_only : {"tools", "tool_choice", "messages", "chat_template_kwargs"})
    if (field(body, chat_only))
      bad(chat_only, std::string("'") + chat_only + "' is only accepted by /v1/chat/completions");
  r.constraint = parse_output_constraint(body);
  return r;
}

}  // namespace tessera
