#include "server/http_listener.h"

#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/error.h"
#include "server/api_error.h"
#include "server/http_guard.h"
#include "server/sse.h"

namespace tessera {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

// A fixed pool of threads running queued tasks (the route handlers, which block).
class WorkerPool {
 public:
  void start(int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  void post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }
  // Runs what is queued, then joins.
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

std::string error_body(int status, const std::string& message, const std::string& code) {
  return json_text(api_error_body(status, message, "", code));
}

}  // namespace

std::string response_head(const HttpResponse& res, size_t body_size, bool chunked,
                          bool keep_alive) {
  const auto reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(res.status)));
  std::string h = "HTTP/1.1 " + std::to_string(res.status) + " " +
                  std::string(reason.data(), reason.size()) + "\r\n";
  for (const auto& [name, value] : res.headers) h += name + ": " + value + "\r\n";
  if (!res.content_type.empty()) h += "Content-Type: " + res.content_type + "\r\n";
  if (chunked)
    h += "Transfer-Encoding: chunked\r\n";
  else
    h += "Content-Length: " + std::to_string(body_size) + "\r\n";
  if (!keep_alive) h += "Connection: close\r\n";
  h += "\r\n";
  return h;
}

// One client connection. Every member is touched only on the connection's strand, except
// those the worker uses through post() + a future (write_blocking) and peer_gone().
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket&& socket, HttpListener::Impl& srv, std::string addr);
  ~Connection();
  void start() { wait_for_request(); }
  // Closes the socket (on the strand); pending operations complete with an error.
  void close_async() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->close_now(); });
  }

 private:
  void wait_for_request();
  void read_head();
  void on_head(beast::error_code ec);
  void on_body(beast::error_code ec);
  void dispatch();
  void run_handler(HttpRequest req, bool keep_alive);
  // From a worker: write `bytes` on the strand and wait; false when the write failed.
  bool write_blocking(std::string bytes);
  // From the strand: write, then read the next request or close.
  void write_then(std::shared_ptr<std::string> bytes, bool keep_alive);
  // The front end's own answer to a bad request; the connection then closes.
  void fail(int status, const std::string& message, const std::string& code = "");
  void linger_close();
  void close_now();
  bool peer_gone() const;

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpListener::Impl& srv_;
  std::string addr_;
  int fd_;
  std::atomic<bool> closed_{false};
  HttpRequest head_;  // the request being read
  std::array<char, 16384> discard_{};
};

struct HttpListener::Impl {
  Impl(const HttpLimits& l, int n_workers, HttpHooks h)
      : limits(l), n_workers(n_workers), hooks(std::move(h)) {}

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // Out of descriptors or similar: back off briefly instead of spinning.
        retry_timer.expires_after(std::chrono::milliseconds(50));
        retry_timer.async_wait([this](beast::error_code) {
          if (acceptor.is_open()) accept();
        });
        return;
      }
      admit(std::move(s));
      accept();
    });
  }

  void admit(tcp::socket s) {
    beast::error_code ec;
    const auto peer = s.remote_endpoint(ec);
    const std::string addr = ec ? std::string("?") : peer.address().to_string();
    bool ok;
    {
      std::lock_guard<std::mutex> lk(mu);
      int& per = per_client[addr];
      ok = n_conns < limits.max_connections && per < limits.max_connections_per_client;
      if (ok) {
        ++n_conns;
        ++per;
      } else if (per == 0) {
        per_client.erase(addr);
      }
    }
    if (!ok) {
      // Refused fast: a canned 503 written without waiting, then closed.
      static const std::string body =
          error_body(503, "too many open connections; retry later", "too_many_connections");
      HttpResponse r;
      r.status = 503;
      r.content_type = "application/json";
      const std::string bytes = response_head(r, body.size(), false, false) + body;
      s.non_blocking(true, ec);
      s.write_some(net::buffer(bytes), ec);
      s.shutdown(tcp::socket::shutdown_both, ec);
      s.close(ec);
      if (hooks.on_front_end_status) hooks.on_front_end_status(503);
      return;
    }
    auto c = std::make_shared<Connection>(std::move(s), *this, addr);
    {
      std::lock_guard<std::mutex> lk(mu);
      conns[c.get()] = c;
    }
    c->start();
  }

  void release(Connection* c, const std::string& addr) {
    std::lock_guard<std::mutex> lk(mu);
    conns.erase(c);
    --n_conns;
    auto it = per_client.find(addr);
    if (it != per_client.end() && --it->second <= 0) per_client.erase(it);
  }

  HttpLimits limits;
  int n_workers;
  HttpHooks hooks;
  // Declared before the io_context: connections its destructor frees still unregister here.
  mutable std::mutex mu;
  int n_conns = 0;
  std::map<std::string, int> per_client;  // open connections by client address
  std::map<Connection*, std::weak_ptr<Connection>> conns;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  net::steady_timer retry_timer{ioc};
  WorkerPool workers;
  std::vector<std::thread> io_threads;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
};

Connection::Connection(tcp::socket&& socket, HttpListener::Impl& srv, std::string addr)
    : stream_(std::move(socket)),
      buffer_(srv.limits.max_header_bytes + 65536),
      srv_(srv),
      addr_(std::move(addr)) {
  fd_ = stream_.socket().native_handle();
}

Connection::~Connection() {
  srv_.release(this, addr_);
}

void Connection::wait_for_request() {
  if (closed_) return;
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(srv_.limits.max_header_bytes));
  // No body limit while the head is read: the API key is decided first (on_head), then
  // the limit applies (checked on Content-Length, and on every chunk as it is decoded).
  // (Not boost::none: Beast 1.74 compares a Content-Length with a none limit as exceeded.)
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
  if (buffer_.size() > 0) return read_head();  // a pipelined request is already here
  // Idle: wait for the first byte under the keep-alive timeout.
  stream_.expires_after(seconds(srv_.limits.keep_alive_timeout_s));
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec) return self->close_now();  // idle timeout, or the client left
                            self->buffer_.commit(n);
                            self->read_head();
                          });
}

void Connection::read_head() {
  stream_.expires_after(seconds(srv_.limits.header_timeout_s));
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t) { self->on_head(ec); });
}

void Connection::on_head(beast::error_code ec) {
  // A passed deadline has closed the socket (beast::tcp_stream): no 408 can be sent.
  if (ec == beast::error::timeout) return close_now();
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
    return fail(431,
                "the request header section is larger than the server's limit of " +
                    std::to_string(srv_.limits.max_header_bytes) + " bytes",
                "request_header_fields_too_large");
  if (ec == http::error::body_limit)
    return fail(413,
                "the request body is larger than the server's limit of " +
                    std::to_string(srv_.limits.max_body_bytes) + " bytes",
                "request_too_large");
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::connection_reset || ec == net::error::operation_aborted)
    return close_now();
  if (ec) return fail(400, "malformed request: " + ec.message(), "bad_request");

  const auto& msg = parser_->get();
  FramingFields framing;
  head_ = HttpRequest{};
  int n_fields = 0;
  for (const auto& f : msg) {
    ++n_fields;
    const std::string name(f.name_string());
    const std::string value(f.value());
    if (f.name() == http::field::content_length) framing.content_length.push_back(value);
    if (f.name() == http::field::transfer_encoding) framing.transfer_encoding.push_back(value);
    head_.headers.emplace(name, value);
  }
  if (n_fields > srv_.limits.max_header_fields)
    return fail(431,
                "the request has " + std::to_string(n_fields) +
                    " header fields; the server's limit is " +
                    std::to_string(srv_.limits.max_header_fields),
                "request_header_fields_too_large");
  if (const std::string e = framing_error(framing); !e.empty()) return fail(400, e, "bad_request");

  head_.method = std::string(msg.method_string());
  const std::string target(msg.target());
  const size_t q = target.find('?');
  head_.path = target.substr(0, q);
  if (q != std::string::npos) head_.query = target.substr(q + 1);

  HttpResponse early;
  if (srv_.hooks.on_head && srv_.hooks.on_head(head_, early)) {
    // Answered before the body: keep the connection only when no body follows.
    const bool body_follows = !parser_->is_done();
    const bool keep = msg.keep_alive() && !body_follows;
    auto bytes = std::make_shared<std::string>(
        response_head(early, early.body.size(), false, keep) + early.body);
    return write_then(std::move(bytes), keep);
  }

  if (parser_->is_done()) return dispatch();
  const size_t max_body = srv_.limits.max_body_bytes;
  if (parser_->content_length() && *parser_->content_length() > max_body)
    return fail(413,
                "the request body is larger than the server's limit of " +
                    std::to_string(max_body) + " bytes",
                "request_too_large");
  parser_->body_limit(max_body);
  auto read_body = [self = shared_from_this()] {
    self->stream_.expires_after(seconds(self->srv_.limits.body_timeout_s));
    http::async_read(self->stream_, self->buffer_, *self->parser_,
                     [self](beast::error_code ec, size_t) { self->on_body(ec); });
  };
  if (beast::iequals(msg[http::field::expect], "100-continue")) {
    auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
    stream_.expires_after(seconds(srv_.limits.write_timeout_s));
    net::async_write(stream_, net::buffer(*cont),
                     [self = shared_from_this(), cont, read_body](beast::error_code ec, size_t) {
                       if (ec) return self->close_now();
                       read_body();
                     });
    return;
  }
  read_body();
}

void Connection::on_body(beast::error_code ec) {
  if (ec == http::error::body_limit)
    return fail(413,
                "the request body is larger than the server's limit of " +
                    std::to_string(srv_.limits.max_body_bytes) + " bytes",
                "request_too_large");
  if (ec == beast::error::timeout) return close_now();  // socket closed by the deadline
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::connection_reset || ec == net::error::operation_aborted ||
      ec == http::error::partial_message)
    return close_now();
  if (ec) return fail(400, "malformed request body: " + ec.message(), "bad_request");
  dispatch();
}

void Connection::dispatch() {
  stream_.expires_never();
  const bool keep_alive = parser_->get().keep_alive();
  HttpRequest req = std::move(head_);
  req.body = std::move(parser_->get().body());
  parser_.reset();
  std::weak_ptr<Connection> weak = shared_from_this();
  req.client_gone = [weak] {
    auto c = weak.lock();
    return !c || c->peer_gone();
  };
  srv_.workers.post([self = shared_from_this(), req = std::move(req), keep_alive]() mutable {
    self->run_handler(std::move(req), keep_alive);
  });
}

void Connection::run_handler(HttpRequest req, bool keep_alive) {
  HttpResponse res;
  try {
    srv_.hooks.on_request(req, res);
  } catch (const std::exception& e) {
    res = HttpResponse{};
    res.status = 500;
    res.set_content(error_body(500, std::string("internal error: ") + e.what(), ""),
                    "application/json");
  }
  req.body.clear();
  req.body.shrink_to_fit();
  if (!res.content_provider) {
    auto bytes = std::make_shared<std::string>(
        response_head(res, res.body.size(), false, keep_alive) + res.body);
    res.body.clear();
    net::post(stream_.get_executor(), [self = shared_from_this(), bytes, keep_alive] {
      self->write_then(bytes, keep_alive);
    });
    return;
  }
  // Streamed: the head, then one chunk per sink write, then the last chunk.
  bool ok = write_blocking(response_head(res, 0, true, keep_alive));
  if (ok) {
    DataSink sink;
    sink.write = [this, &ok](const char* data, size_t n) {
      if (!ok) return false;
      if (n == 0) return true;  // a zero-size chunk would end the body
      char size[32];
      const int len = std::snprintf(size, sizeof size, "%zx\r\n", n);
      std::string chunk(size, static_cast<size_t>(len));
      chunk.append(data, n);
      chunk += "\r\n";
      ok = write_blocking(std::move(chunk));
      return ok;
    };
    sink.is_writable = [this, &ok] { return ok && !peer_gone(); };
    bool provided = false;
    try {
      provided = res.content_provider(0, sink);
    } catch (const std::exception&) {
      provided = false;
    }
    ok = ok && provided && write_blocking("0\r\n\r\n");
  }
  res.content_provider = nullptr;  // frees the stream's state on this thread
  net::post(stream_.get_executor(), [self = shared_from_this(), ok, keep_alive] {
    if (ok && keep_alive)
      self->wait_for_request();
    else
      self->close_now();
  });
}

bool Connection::write_blocking(std::string bytes) {
  if (closed_) return false;
  auto buf = std::make_shared<std::string>(std::move(bytes));
  auto done = std::make_shared<std::promise<bool>>();
  std::future<bool> result = done->get_future();
  net::post(stream_.get_executor(), [self = shared_from_this(), buf, done] {
    if (self->closed_) return done->set_value(false);
    self->stream_.expires_after(seconds(self->srv_.limits.write_timeout_s));
    net::async_write(self->stream_, net::buffer(*buf),
                     [self, buf, done](beast::error_code ec, size_t) {
                       self->stream_.expires_never();
                       done->set_value(!ec);
                     });
  });
  return result.get();
}

void Connection::write_then(std::shared_ptr<std::string> bytes, bool keep_alive) {
  if (closed_) return;
  stream_.expires_after(seconds(srv_.limits.write_timeout_s));
  net::async_write(stream_, net::buffer(*bytes),
                   [self = shared_from_this(), bytes, keep_alive](beast::error_code ec, size_t) {
                     if (ec) return self->close_now();
                     if (keep_alive) return self->wait_for_request();
                     self->linger_close();
                   });
}

void Connection::fail(int status, const std::string& message, const std::string& code) {
  if (srv_.hooks.on_front_end_status) srv_.hooks.on_front_end_status(status);
  HttpResponse r;
  r.status = status;
  r.set_content(error_body(status, message, code), "application/json");
  parser_.reset();
  buffer_.clear();
  write_then(std::make_shared<std::string>(response_head(r, r.body.size(), false, false) + r.body),
             false);
}

// After an answer that ends the connection early (the client may still be sending a body it
// was refused): stop sending, read and drop what arrives for a short while so that the
// client sees the answer rather than a reset, then close. Memory stays one small buffer.
void Connection::linger_close() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.expires_after(std::chrono::seconds(2));
  struct Drain {
    std::shared_ptr<Connection> self;
    void operator()(beast::error_code ec, size_t) {
      if (ec) return self->close_now();
      self->stream_.async_read_some(net::buffer(self->discard_), std::move(*this));
    }
  };
  stream_.async_read_some(net::buffer(discard_), Drain{shared_from_this()});
}

void Connection::close_now() {
  if (closed_.exchange(true)) return;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
}

bool Connection::peer_gone() const {
  if (closed_) return true;
  char c;
  const ssize_t r = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r == 0) return true;  // orderly close
  if (r < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return false;  // data waiting (a pipelined request): still there
}

HttpListener::HttpListener(const HttpLimits& limits, int n_workers, HttpHooks hooks)
    : impl_(std::make_unique<Impl>(limits, n_workers, std::move(hooks))) {}

HttpListener::~HttpListener() {
  if (!impl_->io_threads.empty()) stop();
}

int HttpListener::bind(const std::string& host, int port) {
  Impl& s = *impl_;
  try {
    tcp::resolver resolver(s.ioc);
    const auto results = resolver.resolve(host, std::to_string(port));
    const tcp::endpoint ep = results.begin()->endpoint();
    s.acceptor.open(ep.protocol());
    s.acceptor.set_option(net::socket_base::reuse_address(true));
    s.acceptor.bind(ep);
    s.acceptor.listen(SOMAXCONN);
    return s.acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    throw Error("cannot listen on " + host + ":" + std::to_string(port) + ": " + e.what());
  }
}

void HttpListener::start() {
  Impl& s = *impl_;
  s.work.emplace(s.ioc.get_executor());
  s.workers.start(s.n_workers);
  s.accept();
  for (int i = 0; i < std::max(1, s.limits.n_io_threads); ++i)
    s.io_threads.emplace_back([&s] { s.ioc.run(); });
}

void HttpListener::stop() {
  Impl& s = *impl_;
  if (s.io_threads.empty()) return;
  net::post(s.ioc, [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
    s.retry_timer.cancel();
  });
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard<std::mutex> lk(s.mu);
    for (auto& [ptr, weak] : s.conns)
      if (auto c = weak.lock()) open.push_back(std::move(c));
  }
  for (auto& c : open) c->close_async();
  open.clear();      // outside the lock: a last reference unregisters under it
  s.workers.stop();  // handlers blocked on a write see it fail on the closed socket
  s.work.reset();
  s.ioc.stop();
  for (std::thread& t : s.io_threads) t.join();
  s.io_threads.clear();
}

int HttpListener::n_connections() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->n_conns;
}

}  // namespace tessera
