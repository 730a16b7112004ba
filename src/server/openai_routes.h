// The API routes: /v1/chat/completions, /v1/completions, /v1/models, /health, /metrics,
// /tokenize, /detokenize; and /v1/embeddings, /v1/rerank, /v1/score (EmbeddingRoutes) on
// a server of an embedding or scoring model. A generation request flows one way:
//   body -> CompletionRequest (parse + validate) -> prompt tokens (template, tokenizer)
//   -> Generation::submit -> poll deltas -> JSON body or SSE chunks.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "server/embedding_routes.h"
#include "server/generation.h"
#include "server/http_types.h"
#include "server/metrics.h"
#include "server/prompt_builder.h"

namespace tessera {

class OpenAIRoutes {
 public:
  // Exactly one of `engine` (a generation server) and `embed` (an embedding / scoring
  // server) is given; the routes of the other answer 400 saying what the model serves.
  OpenAIRoutes(Engine* engine, EmbeddingRoutes* embed, const Model& model,
               std::string served_model_name, const std::string& chat_template = "",
               const ChatParserNames& parsers = {});

  void add_to(HttpRouter& svr);

  // Shutdown: new generation requests are refused by the engine (503); these let the
  // server wait for, or cut short, those still running.
  void set_draining() { draining_ = true; }
  int n_active() const { return engine_ ? engine_->n_inflight() : 0; }
  void abort_all() {
    if (engine_) engine_->abort_all();
  }

  ServerMetrics& metrics() { return metrics_; }
  const std::string& served_model_name() const { return served_name_; }
  int max_model_len() const;  // the engine's, or the embedding model's longest input

 private:
  void completions(const HttpRequest& req, HttpResponse& res, bool chat);
  void models(HttpResponse& res) const;
  void health(HttpResponse& res) const;
  void tokenize(const HttpRequest& req, HttpResponse& res) const;
  void detokenize(const HttpRequest& req, HttpResponse& res) const;

  Engine* engine_;
  EmbeddingRoutes* embed_;
  const Model& model_;
  const Tokenizer& tok_;
  std::string served_name_;
  PromptBuilder prompts_;
  ServerMetrics metrics_;
  std::atomic<bool> draining_{false};
  int64_t created_;
};

// Writes an OpenAI error body with `status`.
void send_error(HttpResponse& res, int status, const std::string& message,
                const std::string& param = {}, const std::string& code = {});

}  // namespace tessera
