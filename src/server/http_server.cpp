#include "server/http_server.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <thread>

#include "core/error.h"
#include "engine/engine.h"
#include "models/model.h"
#include "server/http_guard.h"
#include "server/openai_routes.h"
#include "server/web_assets.h"

namespace tessera {

namespace {

using Clock = std::chrono::steady_clock;

// SIGHUP drains like SIGTERM: a server started from a terminal that closes, or told to
// "reload" by a process manager, finishes its requests instead of dying mid-response.
sigset_t shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

// Method each route answers, for telling 405 from 404.
const std::map<std::string, std::string>& route_methods() {
  static const std::map<std::string, std::string> m = {{"/v1/chat/completions", "POST"},
                                                       {"/v1/completions", "POST"},
                                                       {"/v1/embeddings", "POST"},
                                                       {"/v1/rerank", "POST"},
                                                       {"/rerank", "POST"},
                                                       {"/v2/rerank", "POST"},
                                                       {"/v1/score", "POST"},
                                                       {"/score", "POST"},
                                                       {"/v1/models", "GET"},
                                                       {"/health", "GET"},
                                                       {"/metrics", "GET"},
                                                       {"/tokenize", "POST"},
                                                       {"/detokenize", "POST"}};
  return m;
}

// Routes anyone may call even with an API key set: probes and monitoring, and the chat
// page (it asks for the key itself when the API answers 401).
bool is_open_route(const std::string& path, bool webui) {
  return path == "/health" || path == "/metrics" || (webui && find_web_asset(path) != nullptr);
}

}  // namespace

void block_shutdown_signals() {
  sigset_t set = shutdown_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

struct HttpServer::Impl {
  Impl(Engine* e, EmbedBatcher* b, const Model& m, const ServerOptions& o)
      : engine(e),
        opts(o),
        embed(b ? std::make_unique<EmbeddingRoutes>(*b, o.served_model_name) : nullptr),
        routes(e, embed.get(), m, o.served_model_name, o.chat_template, o.parsers) {}

  // Requests in flight, and refusing new ones, whichever kind of server this is.
  int n_inflight() const { return engine ? engine->n_inflight() : embed->n_inflight(); }
  void stop_accepting() {
    if (engine)
      engine->stop_accepting();
    else
      embed->stop_accepting();
  }

  // Before the body is read: unknown route (404), wrong method (405), missing or wrong API
  // key (401). True when `res` holds the answer.
  bool check_head(const HttpRequest& req, HttpResponse& res) {
    if (!router.find(req.method, req.path)) {
      auto it = route_methods().find(req.path);
      if (it != route_methods().end() && it->second != req.method) {
        send_error(res, 405, req.method + " is not allowed on " + req.path + "; use " + it->second,
                   "", "method_not_allowed");
        res.set_header("Allow", it->second);
      } else {
        send_error(res, 404, "no route for " + req.method + " " + req.path, "", "not_found");
      }
    } else if (!opts.api_key.empty() && !is_open_route(req.path, opts.webui)) {
      const std::string auth = req.get_header_value("Authorization");
      if (bearer_matches(auth, opts.api_key)) return false;
      send_error(
          res, 401,
          auth.empty() ? "missing API key: send 'Authorization: Bearer <key>'" : "invalid API key",
          "", "invalid_api_key");
      res.set_header("WWW-Authenticate", "Bearer");
    } else {
      return false;
    }
    routes.metrics().count_response(res.status);
    return true;
  }

  Engine* engine;  // generation server, or
  ServerOptions opts;
  std::unique_ptr<EmbeddingRoutes> embed;  // embedding / scoring server
  OpenAIRoutes routes;
  HttpRouter router;
  std::unique_ptr<HttpListener> listener;
  std::atomic<uint64_t> n_handled{0};  // requests whose handler returned
  int port = -1;
};

HttpServer::HttpServer(Engine& engine, const Model& model, const ServerOptions& opts) {
  impl_ = std::make_unique<Impl>(&engine, nullptr, model, opts);
  // One worker per request in flight: a request holds its worker while it generates, so
  // the pool covers every request the engine can hold (running + waiting) and some. Slow
  // or idle connections hold no worker (the front end reads requests on its own threads).
  const EngineConfig& ec = engine.config();
  setup(std::clamp(ec.max_num_seqs + ec.max_waiting + 16, 16, 512));
}

HttpServer::HttpServer(EmbedBatcher& batcher, const Model& model, const ServerOptions& opts) {
  impl_ = std::make_unique<Impl>(nullptr, &batcher, model, opts);
  // A request holds its worker while its inputs wait for the batcher.
  setup(64);
}

void HttpServer::setup(int default_workers) {
  Impl& s = *impl_;
  s.routes.add_to(s.router);
  if (s.opts.webui) {
    // The chat page: web_response decides status and headers; this only sends them.
    auto is_page = [](const std::string& path) {
      if (path == "/") return true;
      const std::string prefix = "/webui/";
      return path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
             path.find('/', prefix.size()) == std::string::npos;
    };
    s.router.GetMatching(is_page, [](const HttpRequest& req, HttpResponse& res) {
      const WebResponse w = web_response(req.path, req.get_header_value("If-None-Match"));
      if (w.status == 404) {
        send_error(res, 404, "no route for GET " + req.path, "", "not_found");
        return;
      }
      res.status = w.status;
      std::string type;
      for (const auto& [name, value] : w.headers) {
        if (name == "Content-Type")
          type = value;
        else
          res.set_header(std::string(name), std::string(value));
      }
      if (w.status == 200) res.set_content(w.body.data(), w.body.size(), type);
    });
  }
  HttpHooks hooks;
  hooks.on_head = [&s](const HttpRequest& req, HttpResponse& res) {
    return s.check_head(req, res);
  };
  hooks.on_request = [&s](const HttpRequest& req, HttpResponse& res) {
    if (const HttpHandler* h = s.router.find(req.method, req.path)) (*h)(req, res);
    s.n_handled.fetch_add(1, std::memory_order_relaxed);
  };
  hooks.on_front_end_status = [&s](int status) { s.routes.metrics().count_response(status); };
  const int n_workers = s.opts.n_http_threads > 0 ? s.opts.n_http_threads : default_workers;
  s.listener = std::make_unique<HttpListener>(s.opts.http, n_workers, std::move(hooks));
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  impl_->port = impl_->listener->bind(impl_->opts.host, impl_->opts.port);
  return impl_->port;
}

int HttpServer::run() {
  Impl& s = *impl_;
  std::fprintf(stderr, "serving '%s' on http://%s:%d (max model len %d)\n",
               s.routes.served_model_name().c_str(), s.opts.host.c_str(), s.port,
               s.routes.max_model_len());
  if (s.opts.webui) std::fprintf(stderr, "chat page: http://%s:%d/\n", s.opts.host.c_str(), s.port);
  s.listener->start();

  // Wait for a shutdown signal; once a second, when the server is idle after serving
  // requests, hand freed memory back to the OS (glibc keeps the high-water mark of a burst
  // of large requests otherwise).
  sigset_t set = shutdown_signals();
  int sig = 0;
  siginfo_t info{};
  uint64_t trimmed_at = 0;
  for (;;) {
    const timespec tick{1, 0};
    sig = sigtimedwait(&set, &info, &tick);
    if (sig > 0) break;
    const uint64_t handled = s.n_handled.load(std::memory_order_relaxed);
    if (handled != trimmed_at && s.n_inflight() == 0 && s.routes.n_active() == 0) {
      malloc_trim(0);
      trimmed_at = handled;
    }
  }
  if (s.opts.on_shutdown_signal) s.opts.on_shutdown_signal(sig, static_cast<int>(info.si_pid));
  std::fprintf(stderr, "%s: no new requests; waiting up to %.0f s for %d running\n",
               sig == SIGINT   ? "SIGINT"
               : sig == SIGHUP ? "SIGHUP"
                               : "SIGTERM",
               s.opts.shutdown_timeout_s, std::max(s.n_inflight(), s.routes.n_active()));
  s.routes.set_draining();
  s.stop_accepting();

  auto wait_idle = [&](double seconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while ((s.n_inflight() > 0 || s.routes.n_active() > 0) && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return s.n_inflight() == 0 && s.routes.n_active() == 0;
  };
  if (!wait_idle(s.opts.shutdown_timeout_s)) {
    std::fprintf(stderr, "shutdown timeout: aborting %d requests\n", s.routes.n_active());
    s.routes.abort_all();
    wait_idle(5.0);  // aborted requests answer promptly; their handlers then return
  }
  s.listener->stop();
  std::fprintf(stderr, "server stopped\n");
  return 0;
}

}  // namespace tessera
