#include "server/openai_routes.h"

#include <chrono>
#include <cstring>
#include <ctime>

#include "models/model.h"
#include "server/api_error.h"
#include "server/chat_stream.h"
#include "server/openai_format.h"
#include "server/openai_request.h"
#include "server/request_constraints.h"
#include "server/sse.h"
#include "tokenizer/tokenizer.h"

namespace tessera {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// How long one wait for engine output lasts before the handler looks at its client again.
constexpr std::chrono::milliseconds kPollInterval{50};

// Ordered: tool schemas and arguments reach chat templates in the client's key order.
nlohmann::ordered_json parse_body(const HttpRequest& req) {
  return parse_request_body(req.body);
}

void send_json(HttpResponse& res, int status, const json& body) {
  res.status = status;
  res.set_content(json_text(body), "application/json");
}

// The prompt and its completion must fit the context: the engine could not run it.
void check_context(int n_prompt, int max_tokens, bool max_tokens_given, int max_model_len) {
  if (n_prompt >= max_model_len)
    throw ApiError(400,
                   "This model's maximum context length is " + std::to_string(max_model_len) +
                       " tokens. However, your prompt has " + std::to_string(n_prompt) +
                       " tokens, which leaves no room for a completion. Please reduce the "
                       "length of the prompt.",
                   "messages", "context_length_exceeded");
  if (max_tokens_given && n_prompt + max_tokens > max_model_len)
    throw ApiError(400,
                   "This model's maximum context length is " + std::to_string(max_model_len) +
                       " tokens. However, you requested " + std::to_string(n_prompt + max_tokens) +
                       " tokens (" + std::to_string(n_prompt) + " in the prompt, " +
                       std::to_string(max_tokens) +
                       " for the completion). Please reduce the length of the prompt or "
                       "max_tokens.",
                   "max_tokens", "context_length_exceeded");
}

// Everything a streaming response needs after the handler has returned.
struct StreamState {
  std::unique_ptr<Generation> gen;
  const Tokenizer* tok;
  ResponseMeta meta;
  bool chat;
  bool logprobs;
  int top_logprobs;
  bool include_usage;
  std::unique_ptr<ChatStream> chat_out;  // chat: the choices' output parsers
};

constexpr const char* kAbortedMessage =
    "the server aborted the request before it finished (it is shutting down)";

// Writes the SSE body; false when the client went away (the generation is aborted).
bool write_stream(StreamState& s, DataSink& sink) {
  auto send = [&](const json& chunk) {
    const std::string data = sse_data(chunk);
    return sink.write(data.data(), data.size());
  };
  if (s.chat) {
    // Each choice opens with the assistant role, as OpenAI streams do.
    for (int i = 0; i < s.gen->n_choices(); ++i)
      if (!send(chat_chunk(s.meta, i, {{"role", "assistant"}, {"content", ""}}, nullptr,
                           RequestStatus::RUNNING, s.include_usage)))
        return false;
  }
  std::vector<ChoiceDelta> deltas;
  while (!s.gen->finished()) {
    deltas.clear();
    if (!s.gen->poll(deltas, kPollInterval)) {
      if (!sink.is_writable()) return false;
      continue;
    }
    for (ChoiceDelta& d : deltas) {
      if (d.finish == RequestStatus::FINISHED_ABORTED) {
        // Cut short by the server (shutdown): an error event and no [DONE], so that no
        // client takes the partial text for a finished completion.
        const std::string data = sse_data(api_error_body(503, kAbortedMessage, "", "aborted"));
        sink.write(data.data(), data.size());
        return true;
      }
      const bool has_lp = s.logprobs && !d.tokens.empty();
      if (s.chat) {
        for (const json& chunk : s.chat_out->chunks(s.meta, d, s.include_usage))
          if (!send(chunk)) return false;
      } else if (!d.text.empty() || has_lp || is_finished(d.finish)) {
        json lp;
        if (has_lp) {
          CompletionLogprobs l;
          l.append(*s.tok, d.tokens, s.top_logprobs);
          lp = l.to_json();
        }
        if (!send(completion_chunk(s.meta, d.index, d.text, lp, d.finish, s.include_usage)))
          return false;
      }
    }
  }
  if (s.include_usage && !send(usage_chunk(s.meta, s.chat, s.gen->usage()))) return false;
  const char* done = sse_done();
  return sink.write(done, std::strlen(done));
}

}  // namespace

void send_error(HttpResponse& res, int status, const std::string& message, const std::string& param,
                const std::string& code) {
  send_json(res, status, api_error_body(status, message, param, code));
}

OpenAIRoutes::OpenAIRoutes(Engine* engine, EmbeddingRoutes* embed, const Model& model,
                           std::string served_model_name, const std::string& chat_template,
                           const ChatParserNames& parsers)
    : engine_(engine),
      embed_(embed),
      model_(model),
      tok_(model.tokenizer()),
      served_name_(std::move(served_model_name)),
      prompts_(model, chat_template, parsers),
      created_(static_cast<int64_t>(std::time(nullptr))) {}

void OpenAIRoutes::add_to(HttpRouter& svr) {
  // Every route answers through here: exceptions become OpenAI error bodies.
  auto guard = [this](auto fn) {
    return [this, fn](const HttpRequest& req, HttpResponse& res) {
      try {
        fn(req, res);
      } catch (const ApiError& e) {
        send_error(res, e.status, e.what(), e.param, e.code);
      } catch (const EngineBusy& e) {
        if (e.shutting_down)
          send_error(res, 503, e.what(), "", "shutting_down");
        else
          send_error(res, 429, e.what(), "", "too_many_requests");
      } catch (const Error& e) {
        send_error(res, 400, e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, std::string("internal error: ") + e.what());
      }
      metrics_.count_response(res.status);
    };
  };
  using Req = const HttpRequest&;
  using Res = HttpResponse&;
  svr.Post("/v1/chat/completions", guard([this](Req q, Res r) { completions(q, r, true); }));
  svr.Post("/v1/completions", guard([this](Req q, Res r) { completions(q, r, false); }));
  svr.Get("/v1/models", guard([this](Req, Res r) { models(r); }));
  svr.Get("/health", [this](Req, Res r) { health(r); });
  svr.Get("/metrics", [this](Req, Res r) {
    r.set_content(metrics_.render(engine_ ? engine_->metrics() : EngineMetrics{}),
                  "text/plain; version=0.0.4");
  });
  // Embedding and scoring: transport-independent handlers, JSON body in, JSON body out.
  using Handler = json (EmbeddingRoutes::*)(const json&);
  auto embedding_route = [&](const char* path, Handler h, const char* what) {
    svr.Post(path, guard([this, h, what](Req q, Res r) {
               if (!embed_) throw embeddings_not_served(what, served_name_);
               send_json(r, 200, (embed_->*h)(json(parse_body(q))));
             }));
  };
  embedding_route("/v1/embeddings", &EmbeddingRoutes::embeddings, "embeddings");
  for (const char* path : {"/v1/rerank", "/rerank", "/v2/rerank"})
    embedding_route(path, &EmbeddingRoutes::rerank, "reranking");
  for (const char* path : {"/v1/score", "/score"})
    embedding_route(path, &EmbeddingRoutes::score, "scoring");
  svr.Post("/tokenize", guard([this](Req q, Res r) { tokenize(q, r); }));
  svr.Post("/detokenize", guard([this](Req q, Res r) { detokenize(q, r); }));
}

void OpenAIRoutes::completions(const HttpRequest& req, HttpResponse& res, bool chat) {
  const Clock::time_point t_arrival = Clock::now();
  if (!engine_) throw generation_not_served(embed_->task(), served_name_);
  const auto body = parse_body(req);
  CompletionRequest cr = chat ? parse_chat_request(body, tok_.n_vocab())
                              : parse_completion_request(body, tok_.n_vocab());
  if (!cr.model.empty() && cr.model != served_name_)
    throw ApiError(
        404,
        "The model '" + cr.model + "' does not exist; this server serves '" + served_name_ + "'.",
        "model", "model_not_found");

  reject_unenforceable(cr.tools, cr.constraint);
  // A request the engine can never hold whole (it is admitted all or nothing) is a 400, not
  // a 429 its client would retry forever.
  const int64_t n_seqs = static_cast<int64_t>(chat ? 1 : cr.prompts.size()) * cr.n;
  if (n_seqs > engine_->capacity())
    throw ApiError(400,
                   "the request asks for " + std::to_string(n_seqs) +
                       " sequences (prompts x n); this server holds at most " +
                       std::to_string(engine_->capacity()) +
                       " at once (--max-num-seqs + --max-waiting)",
                   chat ? "n" : "prompt", "too_many_sequences");

  std::vector<std::vector<int32_t>> prompts;
  ChatPrompt chat_prompt;
  if (chat) {
    chat_prompt = prompts_.chat_prompt(cr);
    prompts.push_back(chat_prompt.ids);
  } else {
    for (const PromptInput& p : cr.prompts) prompts.push_back(prompts_.completion_tokens(p));
  }
  const int max_len = engine_->max_model_len();
  std::vector<int> max_tokens;
  for (const auto& p : prompts) {
    const int n_prompt = static_cast<int>(p.size());
    check_context(n_prompt, cr.max_tokens, cr.max_tokens > 0, max_len);
    max_tokens.push_back(cr.max_tokens > 0 ? cr.max_tokens : max_len - n_prompt);
  }

  auto gen = std::make_unique<Generation>(*engine_, tok_, &metrics_, t_arrival);
  gen->submit(prompts, max_tokens, cr.n, cr.gen, cr.stop, chat_prompt.render_special);
  ResponseMeta meta{new_response_id(chat ? "chatcmpl" : "cmpl"),
                    static_cast<int64_t>(std::time(nullptr)), served_name_};

  if (cr.stream) {
    auto s = std::make_shared<StreamState>();
    s->gen = std::move(gen);
    s->tok = &tok_;
    s->meta = std::move(meta);
    s->chat = chat;
    s->logprobs = cr.logprobs;
    s->top_logprobs = cr.top_logprobs;
    s->include_usage = cr.include_usage;
    if (chat)
      s->chat_out = std::make_unique<ChatStream>(s->gen->n_choices(), chat_prompt.output, tok_,
                                                 cr.logprobs, cr.top_logprobs);
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [this, s](size_t, DataSink& sink) {
      if (!write_stream(*s, sink)) {
        // Client gone: free its KV blocks now.
        s->gen->abort();
        metrics_.count_client_abort();
        return false;
      }
      sink.done();
      return true;
    });
    return;
  }

  std::vector<ChoiceResult> results(gen->n_choices());
  std::vector<ChoiceDelta> deltas;
  while (!gen->finished()) {
    deltas.clear();
    gen->poll(deltas, kPollInterval);
    if (req.client_gone()) {
      gen->abort();  // nobody will read the answer: free its KV blocks now
      metrics_.count_client_abort();
      send_error(res, 499, "the client closed the connection");  // for the metrics only
      return;
    }
    for (ChoiceDelta& d : deltas) {
      ChoiceResult& c = results[d.index];
      c.text += d.text;
      if (cr.logprobs)
        for (GeneratedToken& t : d.tokens) c.tokens.push_back(std::move(t));
      if (is_finished(d.finish)) c.finish = d.finish;
    }
  }
  for (const ChoiceResult& c : results)
    if (c.finish == RequestStatus::FINISHED_ABORTED)
      throw ApiError(503, kAbortedMessage, "", "aborted");
  if (chat) parse_chat_choices(results, chat_prompt.output);
  const UsageCounts usage = gen->usage();
  send_json(res, 200,
            chat ? chat_response(meta, tok_, results, cr.logprobs, cr.top_logprobs, usage)
                 : completion_response(meta, tok_, results, cr.logprobs, cr.top_logprobs, usage));
}

void OpenAIRoutes::models(HttpResponse& res) const {
  json m = {{"id", served_name_},
            {"object", "model"},
            {"created", created_},
            {"owned_by", "tessera"},
            {"max_model_len", max_model_len()}};
  send_json(res, 200, {{"object", "list"}, {"data", json::array({m})}});
}

int OpenAIRoutes::max_model_len() const {
  return engine_ ? engine_->max_model_len() : embed_->max_model_len();
}

void OpenAIRoutes::health(HttpResponse& res) const {
  if (draining_)
    send_json(res, 503, {{"status", "shutting down"}});
  else
    send_json(res, 200, {{"status", "ok"}});
}

void OpenAIRoutes::tokenize(const HttpRequest& req, HttpResponse& res) const {
  const json body = parse_body(req);
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  const char* key = body.contains("content") ? "content" : "prompt";
  if (!body.contains(key) || !body[key].is_string())
    throw ApiError(400, "'content' (or 'prompt') must be a string", "content");
  bool add_special = true;
  if (body.contains("add_special")) {
    if (!body["add_special"].is_boolean())
      throw ApiError(400, "'add_special' must be a boolean", "add_special");
    add_special = body["add_special"].get<bool>();
  }
  const std::string text = body[key].get<std::string>();
  send_json(res, 200, {{"tokens", tok_.encode(text, add_special, /*parse_special=*/true)}});
}

void OpenAIRoutes::detokenize(const HttpRequest& req, HttpResponse& res) const {
  const json body = parse_body(req);
  if (!body.is_object() || !body.contains("tokens") || !body["tokens"].is_array())
    throw ApiError(400, "'tokens' must be an array of token ids", "tokens");
  std::vector<int32_t> ids;
  for (const json& t : body["tokens"]) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= tok_.n_vocab())
      throw ApiError(400,
                     "'tokens' must hold token ids in [0, " + std::to_string(tok_.n_vocab()) + ")",
                     "tokens");
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  send_json(res, 200, {{"content", tok_.decode(ids)}});
}

}  // namespace tessera
