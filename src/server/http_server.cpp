#include "server/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>

#include "core/error.h"
#include "engine/engine.h"
#include "models/model.h"
#include "server/openai_routes.h"
#include "server/web_assets.h"

namespace tessera {

namespace {

using Clock = std::chrono::steady_clock;

sigset_t shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
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

  Engine* engine;  // generation server, or
  ServerOptions opts;
  std::unique_ptr<EmbeddingRoutes> embed;  // embedding / scoring server
  OpenAIRoutes routes;
  httplib::Server svr;
  int port = -1;
};

HttpServer::HttpServer(Engine& engine, const Model& model, const ServerOptions& opts) {
  impl_ = std::make_unique<Impl>(&engine, nullptr, model, opts);
  // One thread per connection in flight: a request holds its thread while it generates,
  // so the pool covers every request the engine can hold (running + waiting) and some.
  const EngineConfig& ec = engine.config();
  setup(opts, std::clamp(ec.max_num_seqs + ec.max_waiting + 16, 16, 512));
}

HttpServer::HttpServer(EmbedBatcher& batcher, const Model& model, const ServerOptions& opts) {
  impl_ = std::make_unique<Impl>(nullptr, &batcher, model, opts);
  // A request holds its thread while its inputs wait for the batcher.
  setup(opts, 64);
}

void HttpServer::setup(const ServerOptions& o, int default_threads) {
  httplib::Server& svr = impl_->svr;
  OpenAIRoutes& routes = impl_->routes;
  const int n_threads = o.n_http_threads > 0 ? o.n_http_threads : default_threads;
  svr.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };
  svr.set_payload_max_length(o.max_body_bytes);
  // An idle keep-alive connection holds its worker thread until this timeout, and
  // shutdown waits for every worker: a short timeout keeps SIGTERM-to-exit short.
  svr.set_keep_alive_timeout(2);

  const std::string api_key = o.api_key;
  const bool webui = o.webui;
  svr.set_pre_routing_handler(
      [api_key, webui, &routes](const httplib::Request& req, httplib::Response& res) {
        if (api_key.empty() || is_open_route(req.path, webui))
          return httplib::Server::HandlerResponse::Unhandled;
        const std::string auth = req.get_header_value("Authorization");
        if (auth == "Bearer " + api_key) return httplib::Server::HandlerResponse::Unhandled;
        send_error(res, 401,
                   auth.empty() ? "missing API key: send 'Authorization: Bearer <key>'"
                                : "invalid API key",
                   "", "invalid_api_key");
        res.set_header("WWW-Authenticate", "Bearer");
        routes.metrics().count_response(401);
        return httplib::Server::HandlerResponse::Handled;
      });

  // Answers httplib produced itself (no route, body too large) get OpenAI error bodies.
  const size_t max_body = o.max_body_bytes;
  svr.set_error_handler(httplib::Server::HandlerWithResponse(
      [max_body, &routes](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        if (res.status == 404) {
          auto it = route_methods().find(req.path);
          if (it != route_methods().end() && it->second != req.method) {
            send_error(res, 405,
                       req.method + " is not allowed on " + req.path + "; use " + it->second, "",
                       "method_not_allowed");
            res.set_header("Allow", it->second);
          } else {
            send_error(res, 404, "no route for " + req.method + " " + req.path, "", "not_found");
          }
        } else if (res.status == 413) {
          send_error(res, 413,
                     "the request body is larger than the server's limit of " +
                         std::to_string(max_body) + " bytes",
                     "", "request_too_large");
        } else {
          send_error(res, res.status, "the request could not be processed");
        }
        routes.metrics().count_response(res.status);
        return httplib::Server::HandlerResponse::Handled;
      }));

  routes.add_to(svr);
  if (o.webui) {
    // The chat page: web_response decides status and headers; this only sends them.
    svr.Get(R"(/|/webui/[^/]+)", [](const httplib::Request& req, httplib::Response& res) {
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
}

HttpServer::~HttpServer() = default;

namespace {

// cpp-httplib (as packaged, compiled) listens with a backlog of 5: a burst of more
// simultaneous connects overflows the accept queue and those clients see resets. Linux lets
// listen() be called again on a listening socket to change its backlog, so find ours among
// this process's descriptors (the library does not expose it) and raise the backlog.
void raise_listen_backlog(int port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (fd <= 2) continue;
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int p = -1;
    if (addr.ss_family == AF_INET) p = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) p = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (p == port) ::listen(fd, SOMAXCONN);
  }
  closedir(dir);
}

}  // namespace

int HttpServer::bind() {
  if (!impl_->svr.bind_to_port(impl_->opts.host, impl_->opts.port))
    throw Error("cannot listen on " + impl_->opts.host + ":" + std::to_string(impl_->opts.port));
  impl_->port = impl_->opts.port;
  raise_listen_backlog(impl_->port);
  return impl_->port;
}

int HttpServer::run() {
  Impl& s = *impl_;
  std::fprintf(stderr, "serving '%s' on http://%s:%d (max model len %d)\n",
               s.routes.served_model_name().c_str(), s.opts.host.c_str(), s.port,
               s.routes.max_model_len());
  if (s.opts.webui) std::fprintf(stderr, "chat page: http://%s:%d/\n", s.opts.host.c_str(), s.port);
  std::thread listener([&s] {
    if (!s.svr.listen_after_bind()) {
      std::fprintf(stderr, "error: the HTTP listener stopped unexpectedly\n");
      kill(getpid(), SIGTERM);
    }
  });

  sigset_t set = shutdown_signals();
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "%s: no new requests; waiting up to %.0f s for %d running\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM", s.opts.shutdown_timeout_s,
               std::max(s.n_inflight(), s.routes.n_active()));
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
  s.svr.stop();
  listener.join();
  std::fprintf(stderr, "server stopped\n");
  return 0;
}

}  // namespace tessera
