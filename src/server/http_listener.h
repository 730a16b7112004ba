// The HTTP/1.1 front end: an event-driven listener on Boost.Beast / Boost.Asio.
//
//   acceptor --> connection (a few I/O threads, all sockets non-blocking)
//      idle wait (keep-alive timeout) -> head (header deadline, size + field-count limits,
//      framing checks) -> on_head hook (404/405/401 before any body byte is read)
//      -> body (body deadline, limit counted on the decoded bytes, chunked or not)
//      -> worker pool: on_request(req, res) may block (it waits for the engine)
//      -> response written by the I/O threads (write deadline); a streamed body's chunks are
//         handed from the worker to the I/O threads one write at a time.
//
// A slow or idle client costs a socket and a small buffer, never a thread: only complete
// requests reach the workers. Connections beyond the caps are answered 503 and closed at once.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "server/http_types.h"

namespace tessera {

struct HttpLimits {
  size_t max_body_bytes = 8u << 20;       // decoded body bytes (413 as soon as exceeded)
  size_t max_header_bytes = 64u << 10;    // request line + header fields (431)
  int max_header_fields = 128;            // header field lines (431)
  double header_timeout_s = 10.0;         // first byte of a request to the end of its head
  double body_timeout_s = 60.0;           // end of the head to the end of the body
  double keep_alive_timeout_s = 5.0;      // idle between requests on one connection
  double write_timeout_s = 60.0;          // one response write (a client that stops reading)
  int max_connections = 4096;             // open connections in all
  int max_connections_per_client = 1024;  // open connections from one client address
  int n_io_threads = 2;
};

struct HttpHooks {
  // Called on an I/O thread once the head is read (req.body is still empty): returns true
  // when it answered `res` itself (the body is then never read). Must not block.
  std::function<bool(const HttpRequest& req, HttpResponse& res)> on_head;
  // Called on a worker thread with the full request.
  std::function<void(const HttpRequest& req, HttpResponse& res)> on_request;
  // Every answer the front end makes itself (400, 408, 413, 431, 503), for the metrics.
  std::function<void(int status)> on_front_end_status;
};

class HttpListener {
 public:
  HttpListener(const HttpLimits& limits, int n_workers, HttpHooks hooks);
  ~HttpListener();

  // Binds and listens; throws Error when it cannot. Returns the bound port.
  int bind(const std::string& host, int port);
  // Starts the I/O threads and the workers; returns at once.
  void start();
  // Closes the listening socket and every connection, then joins all threads. Requests still
  // in a handler are waited for (the caller drains the engine first).
  void stop();
  int n_connections() const;

  struct Impl;  // opaque; public so that the connections (http_listener.cpp) can reach it

 private:
  std::unique_ptr<Impl> impl_;
};

// The bytes of a response head: status line, `res.headers`, Content-Type, and either
// Content-Length (`body_size`) or Transfer-Encoding: chunked (`chunked`).
std::string response_head(const HttpResponse& res, size_t body_size, bool chunked, bool keep_alive);

}  // namespace tessera
