// The HTTP server around OpenAIRoutes: the event-driven front end (http_listener.h) with its
// limits, the API-key check before the body is read, OpenAI error bodies for what the routes
// never see (404, 405, 413, 431), and graceful shutdown on SIGINT / SIGTERM / SIGHUP: stop
// accepting (503), let running requests finish within the shutdown timeout, abort the rest,
// exit 0. SIGHUP drains like SIGTERM (nothing is reloaded).
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "server/http_listener.h"
#include "server/prompt_builder.h"

namespace tessera {

class Engine;
class EmbedBatcher;
class Model;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;            // "": no authentication
  std::string served_model_name;  // the name /v1/models lists and requests must use
  HttpLimits http;                // deadlines, size limits and connection caps of the front end
  double shutdown_timeout_s = 30.0;
  int n_http_threads = 0;     // handler threads; 0: enough for every request the engine holds
  std::string chat_template;  // Jinja source overriding the model's (""): --chat-template
  ChatParserNames parsers;    // --tool-call-parser, --reasoning-parser
  bool webui = true;          // the chat page at "/" (web_assets.h); --no-webui
  // Called with the shutdown signal and the pid that sent it (0: unknown) before the
  // server drains: a distributed server says what the signal means for its ranks.
  std::function<void(int sig, int sender_pid)> on_shutdown_signal;
};

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread it starts afterwards
// (call it first, before the engine starts its thread), so that only HttpServer::run
// receives them; ignores SIGPIPE (a vanished client must not kill the server).
void block_shutdown_signals();

class HttpServer {
 public:
  // A generation server over the engine.
  HttpServer(Engine& engine, const Model& model, const ServerOptions& opts);
  // An embedding or scoring server over the batcher (/v1/embeddings, /v1/rerank, /v1/score).
  HttpServer(EmbedBatcher& batcher, const Model& model, const ServerOptions& opts);
  ~HttpServer();

  // Binds the listening socket; throws Error when it cannot. Returns the bound port.
  int bind();
  // Serves until SIGINT / SIGTERM / SIGHUP, then drains. Returns the process exit code.
  int run();

 private:
  struct Impl;
  void setup(int n_workers);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
